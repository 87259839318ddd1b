"""prado-export: writes a fully int8, builtin-ops-only .tflite from a trained model (issue #4).

Usage: prado-export --model_dir=DIR --output=FILE.tflite
"""
from absl import app, flags

from prado_tiny import common_flags

flags.DEFINE_string("model_dir", None, "A model directory written by prado-train.")
flags.DEFINE_string("output", None, "Path of the .tflite file to write.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    raise app.UsageError("prado-export: export is not available in this release yet "
                         "(tracked by the pNLP-Mixer issue #4).")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
