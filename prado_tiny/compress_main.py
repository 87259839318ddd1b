"""prado-compress: embedding-table compression against degradation, for a trained model.

Usage: prado-compress --reference=DIR --dataset=NAME --data_dir=DIR --split=SPLIT
       [--compressed=DIR,...] [--compare=DIR,...] [--metric=exact_match] [--out=PREFIX]

--reference is a model folder with an embedding table (`prado-train --model=bilstm`). Its table
is compressed offline by every method of the sweep (int8, product quantization, additive codes,
SVD low rank, tfmot magnitude pruning, tfmot weight clustering), the model re-scored each time
without retraining. --compressed adds task-aware models (`prado-train --model=bilstm
--embedding=codes`), --compare any other toolkit model (the projection models) on the same
size axis. Prints a table (compression of the table against float32, scores, relative
degradation of --metric) and writes PREFIX.json, PREFIX.md and PREFIX.png.
"""
import os
import time

from absl import app, flags

from prado_tiny import common_flags

common_flags.define_data_flags(split_default="dev")
flags.adopt_module_key_flags(common_flags)
flags.DEFINE_string("reference", None, "Model folder of the uncompressed embedding model.")
flags.DEFINE_list("compressed", [], "Model folders of task-aware compressed models.")
flags.DEFINE_list("compare", [], "Other model folders to place on the size axis.")
flags.DEFINE_enum("metric", "exact_match", ["exact_match", "intent_accuracy", "slot_f1"],
                  "The score whose relative degradation is reported and plotted.")
flags.DEFINE_string("out", "compression", "Output prefix: PREFIX.json, PREFIX.md, PREFIX.png.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if not FLAGS.reference:
        raise app.UsageError("--reference is required (a prado-train --model=bilstm folder)")
    for path in [FLAGS.reference, *FLAGS.compressed, *FLAGS.compare]:
        if not os.path.isdir(path):
            raise app.UsageError(f"{path}: no such model folder")
    # The reference's kind from model.json before TensorFlow loads (`report.measure` checks
    # the --compressed folders before its sweep).
    kind = _embedding_kind(FLAGS.reference)
    if kind != "table":
        raise app.UsageError(f"{FLAGS.reference}: the reference must be an embedding-table model "
                             f"(prado-train --model=bilstm), not {kind}")
    from prado_tiny.bench.machine import describe_machine
    from prado_tiny.compress import report
    from prado_tiny.data.example import DataError
    from prado_tiny.data.registry import DatasetError, read_dataset
    from prado_tiny.models.model_dir import ModelDirError

    try:
        examples = list(read_dataset(FLAGS.dataset, FLAGS.data_dir, FLAGS.split,
                                     FLAGS.languages or None, skip_bad_rows=FLAGS.skip_bad_rows))
    except (DataError, DatasetError) as e:
        raise app.UsageError(str(e)) from None
    if not examples:
        raise app.UsageError(f"no examples in {FLAGS.dataset} split {FLAGS.split!r}")
    t0 = time.time()
    try:
        rows = report.measure(FLAGS.reference, examples, FLAGS.compressed, FLAGS.compare,
                              log=lambda s: print("prado-compress: " + s, flush=True))
    except (ValueError, ModelDirError) as e:
        raise app.UsageError(str(e)) from None
    langs = sorted({e.language for e in examples})
    meta = {"dataset": FLAGS.dataset, "split": FLAGS.split, "languages": langs,
            "examples": len(examples), "date": time.strftime("%Y-%m-%d"),
            "machine": describe_machine(), "seconds": round(time.time() - t0, 1),
            "title": f"{FLAGS.dataset} {FLAGS.split} ({','.join(langs)}), {len(examples)} examples"}
    paths = report.write(rows, FLAGS.out, FLAGS.metric, meta)
    print(report.table(rows, FLAGS.metric))
    print(report.comparison_table(report.compare_at_size(rows, FLAGS.metric), FLAGS.metric))
    print(f"prado-compress: written {', '.join(paths.values())}")


def _embedding_kind(model_dir: str) -> str:
    """`model_dir.embedding_kind` of a folder's model.json, with usage errors."""
    from prado_tiny.models import model_dir as md  # no TensorFlow import
    try:
        spec = md.read_spec(model_dir)
    except md.ModelDirError as e:
        raise app.UsageError(str(e)) from None
    if spec is None:
        raise app.UsageError(f"{model_dir}: not a prado-train model folder (no model.json)")
    return md.embedding_kind(spec)


def run():
    app.run(main)


if __name__ == "__main__":
    run()
