"""prado-eval: scores a model folder or a .tflite on a dataset, per language.

Usage: prado-eval --model=FILE.tflite|DIR --dataset=NAME --data_dir=DIR --split=SPLIT
       [--languages=...] [--predictions_out=FILE] [--metrics_out=FILE.json]
       [--teacher_out=FILE] [--max_examples=N] [--nofake_quant]

Prints intent accuracy, slot P/R/F1 and exact match per language, overall (micro) and averaged
over languages. --predictions_out writes one JSON line per example, in the order of the input
file: utterance, language, tokens, intent, slots (BIO tags over tokens), and the gold labels.
--teacher_out writes the model's logits as a teacher file for `prado-train --teacher`
(distillation; format in prado_tiny/data/teacher.py).

A pQRNN-MAtt (a prado-train --model=pqrnn_matt folder, or its exported encoder .tflite with the
decoder beside it) is decoded by constrained beam search (the model's width and length penalty,
or --beam_width / --length_penalty_alpha) and scored by tree exact match per language (the
`tree EM` column) and by the flat scores of the frame derived from each predicted tree (root
intent, top-level slots placed on the tokens), comparable with the flat models' exact match.
Its --predictions_out lines also carry `parse` (and `gold_parse`).
"""
import json
import os
import time

from absl import app, flags

from prado_tiny import common_flags

common_flags.define_data_flags(split_default="dev")
flags.adopt_module_key_flags(common_flags)  # so --help lists the shared flags too
flags.DEFINE_string("model", None, "A .tflite file or a model directory written by prado-train.")
flags.DEFINE_string("predictions_out", None, "Write one JSON line per example, in input order.")
flags.DEFINE_string("metrics_out", None, "Write the metrics as JSON.")
flags.DEFINE_string("teacher_out", None, "Write the model's intent and slot logits per example "
                    "as a teacher file for `prado-train --teacher` (use --split=train).")
flags.DEFINE_integer("max_examples", 0, "Score only the first N examples of each language, in "
                     "file order (0 = all): a quick or re-runnable partial figure.")
flags.DEFINE_bool("fake_quant", True, "A model folder trained with QAT: score it with its fake "
                  "quantization (what its int8 .tflite is trained to match); --nofake_quant "
                  "scores its weights in float, to tell the quantization's cost from the weights'.")
flags.DEFINE_integer("beam_width", 0, "Seq2seq models: beam width (0 = the model's default).")
flags.DEFINE_float("length_penalty_alpha", -1.0, "Seq2seq models: alpha of the GNMT length "
                   "penalty (negative = the model's default).")
FLAGS = flags.FLAGS


def _seq2seq_keras(model, spec, vocab, encoder, examples):
    """Output ids of a seq2seq model folder (pQRNN-MAtt, the LSTM baseline), by constrained beam
    search."""
    from prado_tiny.evaluation import keras_decode
    from prado_tiny.export.seq2seq import decoding_defaults
    from prado_tiny.models import model_dir as md
    d = decoding_defaults(spec)
    width = FLAGS.beam_width or d["beam_width"]
    alpha = d["length_penalty_alpha"] if FLAGS.length_penalty_alpha < 0 else FLAGS.length_penalty_alpha
    return keras_decode(model, md.featurize(examples, spec, encoder, vocab), vocab, width, alpha), width, alpha


def first_per_language(examples, n):
    """The first `n` examples of each language, in their input order."""
    seen = {}
    kept = []
    for ex in examples:
        seen[ex.language] = seen.get(ex.language, 0) + 1
        if seen[ex.language] <= n:
            kept.append(ex)
    return kept


def main(argv):
    del argv
    if not FLAGS.model:
        raise app.UsageError("--model is required (a .tflite file or a prado-train model folder)")
    if not os.path.exists(FLAGS.model):
        raise app.UsageError(f"{FLAGS.model}: not found")
    from prado_tiny.data.example import DataError, ReadReport
    from prado_tiny.data.registry import DatasetError, read_dataset
    from prado_tiny.evaluation import predictions, score, write_predictions
    from prado_tiny.metrics import format_table

    report = ReadReport()
    try:
        examples = list(read_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.split, FLAGS.languages or None,
                                     skip_bad_rows=FLAGS.skip_bad_rows, report=report))
    except (DataError, DatasetError) as e:
        raise app.UsageError(str(e)) from None
    if not examples:
        raise app.UsageError(f"no examples in {FLAGS.dataset} split {FLAGS.split!r}")
    if FLAGS.max_examples < 0:
        raise app.UsageError(f"--max_examples={FLAGS.max_examples}: must be 0 (all) or positive")
    if FLAGS.max_examples:
        examples = first_per_language(examples, FLAGS.max_examples)
    t0 = time.time()
    seq2seq, files = False, [FLAGS.model]
    if os.path.isdir(FLAGS.model):
        from prado_tiny.evaluation import keras_logits
        from prado_tiny.models import model_dir as md
        try:
            model, spec, vocab, encoder = md.load(FLAGS.model,
                                                  quantize=None if FLAGS.fake_quant else False)
        except md.ModelDirError as e:
            raise app.UsageError(str(e)) from None
        kind = ("model folder, QAT weights in float (--nofake_quant)"
                if spec.get("qat") and not FLAGS.fake_quant else "model folder")
        if md.is_seq2seq(spec):
            seq2seq = True
            _no_teacher_out(spec["model_type"])
            ids, width, alpha = _seq2seq_keras(model, spec, vocab, encoder, examples)
        else:
            li, ls = keras_logits(model, md.featurize(examples, spec, encoder, vocab))
            intent_mode = spec["intent_mode"]
    else:
        from prado_tiny.export.metadata import MetadataError
        from prado_tiny.export.tflite import tflite_logits
        from prado_tiny.predictor import Predictor
        try:
            p = Predictor(FLAGS.model)
        except (MetadataError, OSError) as e:
            raise app.UsageError(str(e)) from None
        kind = "int8 .tflite"
        if p.seq2seq:
            seq2seq, kind = True, "int8 .tflite encoder + decoder"
            files.append(p.decoder_path)
            _no_teacher_out(p.model_type)
            vocab = p.output_vocab
            width = FLAGS.beam_width or p.beam_width
            alpha = p.length_penalty_alpha if FLAGS.length_penalty_alpha < 0 else FLAGS.length_penalty_alpha
            ids = p.decode_token_lists([ex.tokens for ex in examples], width, alpha)
        else:
            vocab, intent_mode = p.vocab, p.intent_mode
            li, ls = tflite_logits(FLAGS.model, examples)
    seconds = time.time() - t0
    if seq2seq:
        from prado_tiny.evaluation import score_seq2seq, seq2seq_predictions
        preds = seq2seq_predictions(examples, ids, vocab)
        result = score_seq2seq(examples, preds)
    else:
        preds = predictions(examples, li, ls, vocab, intent_mode)
        result = score(examples, preds, vocab)
    part = f" (the first {FLAGS.max_examples} of each language)" if FLAGS.max_examples else ""
    print(f"prado-eval: {FLAGS.model} ({kind}) on {FLAGS.dataset} {FLAGS.split}: "
          f"{len(examples)} examples{part} in {seconds:.1f} s")
    print(format_table(result))
    if seq2seq:
        avg = result["average"]
        pct = lambda x: "-" if x is None else f"{100 * x:.2f}"  # noqa: E731
        repaired = sum(bool(p_["repaired"]) for p_ in preds)
        print(f"prado-eval: tree exact match {pct(avg['tree_exact_match'])} (average over "
              f"{avg['languages']} languages), flat exact match {pct(avg['exact_match'])} (frame "
              f"derived from the predicted tree); beam {width}, length penalty {alpha}, constrained "
              f"to well-formed trees ({repaired} repaired)")
    if FLAGS.predictions_out:
        n = write_predictions(FLAGS.predictions_out, preds)
        print(f"prado-eval: {n} predictions written to {FLAGS.predictions_out}")
    if FLAGS.teacher_out:
        from prado_tiny.data.teacher import write_teacher
        n = write_teacher(FLAGS.teacher_out, examples, li, ls, vocab, intent_mode)
        print(f"prado-eval: teacher outputs of {n} examples written to {FLAGS.teacher_out}")
    if FLAGS.metrics_out:
        doc = {"model": FLAGS.model, "dataset": FLAGS.dataset, "split": FLAGS.split,
               "languages": FLAGS.languages, "examples": len(examples),
               "max_examples_per_language": FLAGS.max_examples or None, "result": result}
        if os.path.isdir(FLAGS.model):
            doc["fake_quant"] = bool(spec.get("qat")) and FLAGS.fake_quant
        if seq2seq:
            doc["decoding"] = {"beam_width": width, "length_penalty_alpha": alpha, "constrain": True}
        if not os.path.isdir(FLAGS.model):
            doc["bytes"] = sum(os.path.getsize(f) for f in files)
            if seq2seq:
                doc["files"] = files
        with open(FLAGS.metrics_out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
        print(f"prado-eval: metrics written to {FLAGS.metrics_out}")


def _no_teacher_out(model_type: str) -> None:
    if FLAGS.teacher_out:
        raise app.UsageError(f"--teacher_out writes intent and slot logits; a {model_type} "
                             f"generates parses and has none")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
