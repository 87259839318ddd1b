"""pNLP-Mixer speed on this machine: training throughput and single-thread int8 latency.

throughput: training steps of a model (Base by default: the flags of a model folder's
  model.json, or configs/pnlp_mixer_base.flags sizes) on MTOP's training set with cached
  features (the trainer's own step and batches: shuffled, padded to their longest example,
  256 per batch, QAT off and on); reports examples/s over --steps steps after --warmup steps.
latency: the .tflite given by --tflite on one LiteRT thread: median (p50), p90 and p99 invoke
  time in microseconds, over MTOP English eval utterances (real lengths) and over inputs with
  all 64 tokens filled (the worst case of the fixed [1, 64, 6, 24] input).

Usage:
  python benchmarks/bench_mixer.py throughput [--datasets DIR] [--steps 50]
  python benchmarks/bench_mixer.py latency --tflite runs/mtop_base/model.tflite [--datasets DIR]
Run on an idle machine: both figures move with load on a 2-core VM.
"""
import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

DEFAULT_DATASETS = os.path.join(os.path.dirname(REPO), "shared", "datasets")


def throughput(args):
    from prado_tiny.bench.machine import describe_machine
    from prado_tiny.data.registry import read_dataset
    from prado_tiny.data.text_encoder import TextEncoder
    from prado_tiny.data.token_features import featurize
    from prado_tiny.data.vocab import LabelVocab
    from prado_tiny.layers.fake_quant import set_quantize
    from prado_tiny.layers.minhash_projection import MinHashFeaturizer
    from prado_tiny.models import model_dir as md
    from prado_tiny.trainer import Trainer, TrainConfig, epoch_batches

    train = list(read_dataset("mtop", os.path.join(args.datasets, "mtop"), "train"))
    vocab = LabelVocab.from_examples(train)
    # Whole tokens: the WordPiece form changes only the cached buckets, not the step's cost.
    fs = featurize(train, TextEncoder(), MinHashFeaturizer().buckets, vocab, 64, subwords=False)
    config = dict(num_intents=vocab.num_intents, num_slot_tags=vocab.num_slot_tags,
                  hidden_dim=args.hidden_dim, window=args.window, bloom_size=args.bloom_size,
                  num_layers=args.num_layers)
    spec = {"model_type": "pnlp_mixer", "config": config}
    trainer = Trainer("/tmp/bench_mixer_unused", lambda: md.build_model(spec, quantize=False), fs,
                      None, TrainConfig(batch_size=256, progress=False, checkpoint_secs=0))
    # The trainer's own batches: examples of similar length batched together (bucket_window=50).
    batches = [fs.batch(b) for b in epoch_batches(0, 0, fs.lengths, 256, 50)[:args.warmup + args.steps]]
    print(f"machine: {describe_machine()}; model: {config}; MTOP train, 6 languages, batch 256, "
          f"mean tokens per example {fs.lengths.mean():.1f}")
    for qat in (False, True):
        set_quantize(trainer.model, qat)
        step = trainer._make_train_step()
        for f, y in batches[:args.warmup]:
            step(f, y)
        t0 = time.perf_counter()
        for f, y in batches[args.warmup:]:
            step(f, y)
        dt = time.perf_counter() - t0
        print(f"  {'QAT ' if qat else 'float'}: {args.steps * 256 / dt:,.0f} examples/s "
              f"({dt / args.steps * 1000:.1f} ms per step of 256)")


def latency(args):
    from ai_edge_litert.interpreter import Interpreter

    from prado_tiny.bench.machine import describe_machine
    from prado_tiny.data.registry import read_dataset
    from prado_tiny.predictor import Predictor

    p = Predictor(args.tflite)
    enc = p.encoder
    dev = list(read_dataset("mtop", os.path.join(args.datasets, "mtop"), "eval", ["en"]))[:args.examples]
    form = p.input_form
    real = [(enc.encode_subwords(ex.tokens) if form == "subwords" else enc.encode_tokens(ex.tokens))[None]
            for ex in dev]
    # All 64 positions filled: each utterance's tokens repeated.
    full = [(enc.encode_subwords((list(ex.tokens) * 64)[:enc.max_tokens]) if form == "subwords"
             else enc.encode_tokens((list(ex.tokens) * 64)[:enc.max_tokens]))[None] for ex in dev]
    it = Interpreter(model_path=args.tflite, num_threads=1)
    it.allocate_tensors()
    index = it.get_input_details()[0]["index"]
    print(f"machine: {describe_machine()}; {args.tflite}: {os.path.getsize(args.tflite):,} bytes; "
          f"one thread; {len(dev)} MTOP en eval utterances")
    for name, inputs in (("real length", real), ("64 tokens", full)):
        for x in inputs[:20]:
            it.set_tensor(index, x)
            it.invoke()
        times = []
        for _ in range(args.repeat):
            for x in inputs:
                it.set_tensor(index, x)
                t0 = time.perf_counter()
                it.invoke()
                times.append(time.perf_counter() - t0)
        us = np.array(times) * 1e6
        print(f"  {name}: p50 {np.percentile(us, 50):,.0f} us, p90 {np.percentile(us, 90):,.0f} us, "
              f"p99 {np.percentile(us, 99):,.0f} us, mean {us.mean():,.0f} us ({len(us)} runs)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["throughput", "latency"])
    ap.add_argument("--datasets", default=DEFAULT_DATASETS)
    ap.add_argument("--tflite")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--examples", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hidden_dim", type=int, default=256)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--bloom_size", type=int, default=1024)
    ap.add_argument("--num_layers", type=int, default=2)
    args = ap.parse_args()
    if args.what == "latency" and not args.tflite:
        ap.error("latency needs --tflite")
    throughput(args) if args.what == "throughput" else latency(args)


if __name__ == "__main__":
    main()
