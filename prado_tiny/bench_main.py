"""prado-bench: size, latency and memory of .tflite models on the host, Android or a Pi (issue #8).

Usage: prado-bench --models=A.tflite,B.tflite --target=local --output_json=FILE
"""
from absl import app, flags

from prado_tiny import common_flags

flags.DEFINE_list("models", [], "Comma-separated .tflite files to benchmark.")
flags.DEFINE_enum("target", "local", ["local", "adb", "ssh"], "Where to run the benchmark.")
flags.DEFINE_string("output_json", None, "Write one JSON record per model and target.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    raise app.UsageError("prado-bench: benchmarking is not available in this release yet "
                         "(tracked by the prado-bench issue #8).")


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
