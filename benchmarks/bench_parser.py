"""Single-thread latency of a pQRNN-MAtt .tflite pair per utterance: `Predictor.predict` (encoder
once, then the host search over the one-step decoder), greedy (beam 1) and the model's beam.

Usage (from the repository root):
  python benchmarks/bench_parser.py --model=runs/mtop_matt/parser.tflite \\
      --dataset=mtop --data_dir=../shared/datasets/mtop --split=eval --languages=en [--n=300]
Prints p50/p90/p99 in microseconds per beam width; the first 10 utterances warm up, untimed.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

from prado_tiny.data.registry import read_dataset  # noqa: E402
from prado_tiny.predictor import Predictor  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", default="mtop")
    ap.add_argument("--data_dir", default=None)
    ap.add_argument("--split", default="eval")
    ap.add_argument("--languages", default="en")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    p = Predictor(args.model, num_threads=1)
    if not p.seq2seq:
        raise SystemExit(f"{args.model} is not a pQRNN-MAtt encoder .tflite")
    texts = [e.utterance for e in read_dataset(args.dataset, args.data_dir, args.split,
                                               args.languages.split(","))][:args.n + 10]
    default = p.beam_width
    for width in sorted({1, default}):
        p.beam_width = width
        times = []
        for i, text in enumerate(texts):
            t0 = time.perf_counter()
            p.predict(text)
            if i >= 10:
                times.append((time.perf_counter() - t0) * 1e6)
        q = np.percentile(times, [50, 90, 99])
        print(f"beam {width}: {len(times)} utterances, p50 {q[0]:,.0f} us, p90 {q[1]:,.0f} us, "
              f"p99 {q[2]:,.0f} us (one thread)")
    p.beam_width = default


if __name__ == "__main__":
    main()
