"""prado-eval: scores a checkpoint or a .tflite on a dataset (filled in by issue #4).

Usage: prado-eval --model=FILE.tflite|DIR --dataset=NAME --data_dir=DIR --split=SPLIT
       [--languages=...] [--predictions_out=FILE] [--metrics_out=FILE.json]
"""
from absl import app, flags

from prado_tiny import common_flags

common_flags.define_data_flags(split_default="dev")
flags.adopt_module_key_flags(common_flags)  # so --help lists the shared flags too
flags.DEFINE_string("model", None, "A .tflite file or a model directory written by prado-train.")
flags.DEFINE_string("predictions_out", None, "Write one JSON line per example, in input order.")
flags.DEFINE_string("metrics_out", None, "Write the metrics table as JSON.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    raise app.UsageError("prado-eval: evaluation of models is not available in this release yet "
                         "(tracked by the pNLP-Mixer issue #4).")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
