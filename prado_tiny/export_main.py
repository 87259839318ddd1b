"""prado-export: writes a fully int8, builtin-ops-only .tflite from a trained model folder.

Usage: prado-export --model_dir=DIR --output=FILE.tflite [--calibration_examples=512]
       [--parity_examples=N] [--data_dir=DIR] [--max_exact_match_drop=1.0] [--tensor_report=FILE.json]

The .tflite carries its labels, text encoder (WordPiece vocabulary included) and settings as
metadata: it is all an app needs (`prado_tiny.predictor.Predictor`). The flatbuffer is scanned
(no float, custom or Flex op, or the export fails) and compared with the Keras model on the
development split; the report is printed and written next to the model as FILE.tflite.json.
If the .tflite loses more than --max_exact_match_drop exact-match points against the Keras model,
the export exits with status 1 and says why (the file is kept for inspection).

A pQRNN-MAtt folder (prado-train --model=pqrnn_matt) exports to TWO files: --output is the int8
encoder and FILE.decoder.tflite beside it (FILE.tflite -> FILE.decoder.tflite) the int8 one-step
decoder; both carry the metadata (text encoder, output vocabulary, config, beam defaults), and
`Predictor(FILE.tflite)` finds the decoder by itself. Keep the two files together. The parity
report compares tree exact match of the same beam search over the Keras model and over the two
.tflite files (a host beam search), and --max_exact_match_drop gates the tree exact-match drop.

--tensor_report=FILE.json (debugging a .tflite that drifts from the Keras model) converts the
model again, float and int8, and writes the quantization error of every int8 tensor against its
float counterpart (`prado_tiny.export.tensor_report`; the one-step decoder of a pQRNN-MAtt),
measured on the parity examples (the calibration ones with --parity_examples=-1); the 15 worst
tensors are printed.
"""
import json
import sys

from absl import app, flags

from prado_tiny import common_flags

flags.DEFINE_string("model_dir", None, "A model directory written by prado-train.")
flags.DEFINE_string("output", None, "Path of the .tflite file to write.")
flags.DEFINE_string("data_dir", None, "The training dataset's folder (default: the one training used).")
flags.DEFINE_integer("calibration_examples", 512, "Training utterances for int8 calibration.")
flags.DEFINE_integer("parity_examples", 0, "Development examples for the Keras/TFLite parity "
                     "report (0 = the whole split, -1 = none).")
flags.DEFINE_string("dev_split", "dev", "Split of the parity report.")
flags.DEFINE_integer("seed", 0, "Seed of the calibration sample.")
flags.DEFINE_float("max_exact_match_drop", 1.0, "Fail (exit status 1, the .tflite and its report "
                   "are still written) when the .tflite loses more exact-match points than this "
                   "against the Keras model on the parity examples (--parity_examples=-1 skips "
                   "the parity report and this check).")
flags.DEFINE_bool("keep_tensor_names", False, "Keep the names of internal tensors (debugging "
                  "in a model viewer; about 19 KB more). Input and output names are always kept.")
flags.DEFINE_string("tensor_report", "", "When given, also write to this JSON file the int8 "
                    "quantization error of every tensor (the one-step decoder of a pQRNN-MAtt) "
                    "against a float conversion, and print the worst ones (debugging drift; "
                    "converts the model again).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.model_dir or not FLAGS.output:
        raise app.UsageError("--model_dir and --output are required")
    import numpy as np

    from prado_tiny.data.example import DataError
    from prado_tiny.data.registry import DatasetError, read_dataset
    from prado_tiny.export.tflite import export
    from prado_tiny.models import model_dir as md

    try:
        spec = md.read_spec(FLAGS.model_dir) if md.os.path.isdir(FLAGS.model_dir) else None
    except md.ModelDirError as e:
        raise app.UsageError(str(e)) from None
    if spec is None:
        raise app.UsageError(f"{FLAGS.model_dir}: not a prado-train model folder (no model.json)")
    if spec.get("model_type") == "lstm_seq2seq":
        raise app.UsageError(f"{FLAGS.model_dir} holds the LSTM seq2seq baseline, a float "
                             f"reference that is not exported; evaluate its folder with "
                             f"prado-eval --model={FLAGS.model_dir}")
    data = spec["data"]
    data_dir = FLAGS.data_dir or spec.get("data_dir")
    langs = data["languages"] or None
    try:
        train = list(read_dataset(data["dataset"], data_dir, "train", langs, skip_bad_rows=True))
        order = np.random.default_rng(FLAGS.seed).permutation(len(train))
        calibration = [train[i] for i in order[:FLAGS.calibration_examples]]
        dev = None
        if FLAGS.parity_examples >= 0:
            dev = list(read_dataset(data["dataset"], data_dir, FLAGS.dev_split, langs, skip_bad_rows=True))
            if FLAGS.parity_examples:
                dev = dev[:FLAGS.parity_examples]
    except (DataError, DatasetError, OSError) as e:
        raise app.UsageError(f"cannot read the calibration data ({data['dataset']}, "
                             f"--data_dir={data_dir}): {e}") from None
    seq2seq = md.is_seq2seq(spec)
    if seq2seq:
        from prado_tiny.export import seq2seq as s2s
        if FLAGS.output.endswith(".decoder.tflite"):
            raise app.UsageError(f"--output={FLAGS.output}: name the encoder file (FILE.tflite); "
                                 f"the decoder is written beside it as FILE.decoder.tflite")
        export_fn = s2s.export
    else:
        export_fn = export
    try:
        converted = {}  # the converter's named int8 bytes: the tensor report measures them
        report = export_fn(FLAGS.model_dir, FLAGS.output, calibration, dev,
                           keep_tensor_names=FLAGS.keep_tensor_names, converted=converted)
    except md.ModelDirError as e:
        raise app.UsageError(str(e)) from None
    drop = report.get("parity", {}).get("exact_match_drop")
    if drop is not None:
        report["max_exact_match_drop"] = FLAGS.max_exact_match_drop
        report["parity_ok"] = drop <= FLAGS.max_exact_match_drop
    with open(FLAGS.output + ".json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    if seq2seq:
        print(f"prado-export: wrote {report['output']} (encoder, {report['encoder_bytes']:,} bytes) "
              f"and {report['decoder_output']} (one-step decoder, {report['decoder_bytes']:,} bytes): "
              f"{report['bytes']:,} bytes together ({report['bytes'] / 2**20:.3f} MiB), "
              f"{report['ops']} ops, int8 builtin ops only: "
              f"{'yes' if report['builtin_int8'] else 'NO'}, {report['parameters']:,} parameters")
    else:
        print(f"prado-export: wrote {report['output']}: {report['bytes']:,} bytes "
              f"({report['bytes'] / 2**20:.3f} MiB), {report['ops']} ops, int8 builtin ops only: "
              f"{'yes' if report['builtin_int8'] else 'NO'}, {report['parameters']:,} parameters")
    if "parity" in report and seq2seq:
        print("prado-export: " + s2s.parity_summary(report["parity"]))
    elif "parity" in report:
        from prado_tiny.export.tflite import ParityReport
        p = dict(report["parity"])
        p.pop("exact_match_drop", None)
        print("prado-export: " + ParityReport(**p).summary())
    if FLAGS.tensor_report:  # before the parity gate: a failed parity is when it is wanted
        _write_tensor_report(FLAGS.tensor_report, FLAGS.model_dir, calibration, dev, seq2seq,
                             converted["decoder" if seq2seq else "model"])
    if report.get("parity_ok") is False:
        hint = ("the model was trained without quantization-aware training: train it with "
                "--qat_epochs=N (N >= 2) so the int8 model keeps its accuracy"
                if not spec.get("qat") else
                "try more --calibration_examples, or more QAT epochs (--qat_epochs)")
        what = "tree exact-match" if seq2seq else "exact-match"
        print(f"prado-export: FAILED parity: the int8 .tflite loses {drop:.2f} {what} points "
              f"(> --max_exact_match_drop={FLAGS.max_exact_match_drop}); {hint}. "
              f"{FLAGS.output} is kept for inspection.", file=sys.stderr)
        sys.exit(1)


def _write_tensor_report(path: str, model_dir: str, calibration, dev, seq2seq: bool,
                         int8_model: bytes) -> None:
    """Writes `tensor_report`'s rows of the exported `int8_model` to `path` (JSON) and prints
    the 15 of largest error."""
    import os

    from prado_tiny.export.tensor_report import format_report, tensor_report
    rows = tensor_report(model_dir, calibration, dev, int8_model=int8_model)
    doc = {"model_dir": model_dir, "graph": "decoder step" if seq2seq else "model",
           "measured_on": "parity examples" if dev else "calibration examples", "tensors": rows}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    print(f"prado-export: int8 error of {len(rows)} tensors ({doc['graph']}, "
          f"{doc['measured_on']}) written to {path}; the 15 largest (relative RMS against a float "
          f"conversion, graph order):\n{format_report(rows, top=15)}")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
