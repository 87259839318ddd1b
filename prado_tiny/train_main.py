"""prado-train: trains a model on a dataset (filled in by the pNLP-Mixer issue, #4).

Usage: prado-train --flagfile=configs/pnlp_mixer_base.flags --model_dir=DIR [--dataset=NAME
       --data_dir=DIR --languages=en,de --epochs=N]
"""
from absl import app, flags

from prado_tiny import common_flags

common_flags.define_data_flags()
flags.adopt_module_key_flags(common_flags)  # so --help lists the shared flags too
flags.DEFINE_string("model_dir", None, "Where checkpoints, vocabularies and logs are written.")
flags.DEFINE_integer("epochs", 50, "Number of training epochs.")
flags.DEFINE_integer("seed", 0, "Random seed; the same seed repeats a run.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    raise app.UsageError("prado-train: training is not available in this release yet "
                         "(tracked by the pNLP-Mixer issue #4); prado-data works now.")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
