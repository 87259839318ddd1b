"""prado-eval: scores a model folder or a .tflite on a dataset, per language.

Usage: prado-eval --model=FILE.tflite|DIR --dataset=NAME --data_dir=DIR --split=SPLIT
       [--languages=...] [--predictions_out=FILE] [--metrics_out=FILE.json]
       [--teacher_out=FILE]

Prints intent accuracy, slot P/R/F1 and exact match per language, overall (micro) and averaged
over languages. --predictions_out writes one JSON line per example, in the order of the input
file: utterance, language, tokens, intent, slots (BIO tags over tokens), and the gold labels.
--teacher_out writes the model's logits as a teacher file for `prado-train --teacher`
(distillation; format in prado_tiny/data/teacher.py).
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
FLAGS = flags.FLAGS


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
    t0 = time.time()
    if os.path.isdir(FLAGS.model):
        from prado_tiny.evaluation import keras_logits
        from prado_tiny.models import model_dir as md
        try:
            model, spec, vocab, encoder = md.load(FLAGS.model)
        except md.ModelDirError as e:
            raise app.UsageError(str(e)) from None
        li, ls = keras_logits(model, md.featurize(examples, spec, encoder, vocab))
        intent_mode, kind = spec["intent_mode"], "model folder"
    else:
        from prado_tiny.export.metadata import MetadataError
        from prado_tiny.export.tflite import tflite_logits
        from prado_tiny.predictor import Predictor
        try:
            p = Predictor(FLAGS.model)
        except (MetadataError, OSError) as e:
            raise app.UsageError(str(e)) from None
        vocab, intent_mode, kind = p.vocab, p.intent_mode, "int8 .tflite"
        li, ls = tflite_logits(FLAGS.model, examples)
    seconds = time.time() - t0
    preds = predictions(examples, li, ls, vocab, intent_mode)
    result = score(examples, preds, vocab)
    print(f"prado-eval: {FLAGS.model} ({kind}) on {FLAGS.dataset} {FLAGS.split}: "
          f"{len(examples)} examples in {seconds:.1f} s")
    print(format_table(result))
    if FLAGS.predictions_out:
        n = write_predictions(FLAGS.predictions_out, preds)
        print(f"prado-eval: {n} predictions written to {FLAGS.predictions_out}")
    if FLAGS.teacher_out:
        from prado_tiny.data.teacher import write_teacher
        n = write_teacher(FLAGS.teacher_out, examples, li, ls, vocab, intent_mode)
        print(f"prado-eval: teacher outputs of {n} examples written to {FLAGS.teacher_out}")
    if FLAGS.metrics_out:
        doc = {"model": FLAGS.model, "dataset": FLAGS.dataset, "split": FLAGS.split,
               "languages": FLAGS.languages, "examples": len(examples), "result": result}
        if not os.path.isdir(FLAGS.model):
            doc["bytes"] = os.path.getsize(FLAGS.model)
        with open(FLAGS.metrics_out, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1, ensure_ascii=False)
        print(f"prado-eval: metrics written to {FLAGS.metrics_out}")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
