"""Throughput of the host text front end on one core: TextEncoder and the WordPiece splitter.

Reads MTOP's training utterances (six languages), tokenizes them once, then times:
  * TextEncoder.encode_tokens_batch (token form), cold (empty cache) and warm (second epoch);
  * TextEncoder.encode_tokens per example;
  * WordpieceSplitter.split, cold and warm, and tensorflow-text's WordpieceTokenizer on the same
    tokens (with --tf-text);
  * TextEncoder.encode_subwords_batch, cold and warm;
  * learning the WordPiece vocabulary (on --learn-lines lines per language, 0 = all).

Usage:
  python benchmarks/bench_text_encoder.py [--datasets DIR] [--vocab-size 4000] [--learn-lines 0]
      [--batch-size 64] [--cpu 0] [--tf-text] [--vocab FILE]
"""
import argparse
import itertools
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from prado_tiny.bench.machine import describe_machine  # noqa: E402

from prado_tiny.data.text_encoder import TextEncoder  # noqa: E402
from prado_tiny.data.tokenizer import tokenize  # noqa: E402
from prado_tiny.data.wordpiece import (WordpieceSplitter, learn_vocabulary,  # noqa: E402
                                       load_vocabulary)

LANGUAGES = ("en", "de", "es", "fr", "hi", "th")


def read_tokens(datasets: str, lines: int):
    out = []
    for lang in LANGUAGES:
        path = os.path.join(datasets, "mtop", lang, "train.txt")
        with open(path, encoding="utf-8") as f:
            rows = f if lines <= 0 else itertools.islice(f, lines)
            out += [[t for t, _, _ in tokenize(r.split("\t")[0])] for r in rows]
    return out


def timed(fn, items, repeat=3):
    """Best of `repeat` wall times (seconds) of `fn(item)` over all items.

    Results are dropped as they come, as a training loop would: keeping a whole epoch of arrays
    alive would time the page faults of gigabytes of memory rather than the encoder.
    """
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - start)
    return best


def report(name, seconds, tokens):
    print(f"  {name:<44} {tokens / seconds:>12,.0f} tokens/s   ({seconds * 1e3:8.1f} ms)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=os.environ.get(
        "PRADO_DATASETS", os.path.join(os.path.dirname(REPO), "shared", "datasets")))
    parser.add_argument("--vocab-size", type=int, default=4000)
    parser.add_argument("--learn-lines", type=int, default=0,
                        help="lines per language to learn the vocabulary from (0: all)")
    parser.add_argument("--vocab", help="use this vocabulary file instead of learning one")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--cpu", type=int, default=0, help="pin to this core (-1: no pinning)")
    parser.add_argument("--tf-text", action="store_true",
                        help="also time tensorflow-text's WordpieceTokenizer (imports TensorFlow)")
    args = parser.parse_args()

    if args.cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    print("command:", " ".join([os.path.basename(sys.executable)] + sys.argv))
    print("machine:", describe_machine())
    if hasattr(os, "sched_getaffinity"):
        print("cores used:", sorted(os.sched_getaffinity(0)))

    start = time.perf_counter()
    examples = read_tokens(args.datasets, 0)
    n_tokens = sum(len(t) for t in examples)
    distinct = len({t for ex in examples for t in ex})
    print(f"data: MTOP train, {len(LANGUAGES)} languages, {len(examples)} utterances, "
          f"{n_tokens} tokens ({distinct} distinct); read+tokenize "
          f"{time.perf_counter() - start:.1f} s")
    batches = [examples[i:i + args.batch_size] for i in range(0, len(examples), args.batch_size)]

    print(f"TextEncoder token form (batch {args.batch_size}):")
    enc = TextEncoder()
    cold = timed(enc.encode_tokens_batch, batches, repeat=1)
    report("encode_tokens_batch, cold cache", cold, n_tokens)
    print("  stats of one epoch:", enc.stats.summary(enc).replace("\n", "; "))
    warm = timed(enc.encode_tokens_batch, batches)
    report("encode_tokens_batch, warm cache", warm, n_tokens)
    single = timed(enc.encode_tokens, examples)
    report("encode_tokens (one example per call), warm", single, n_tokens)

    if args.vocab:
        vocab = load_vocabulary(args.vocab)
        print(f"vocabulary: {args.vocab}, {len(vocab)} pieces")
    else:
        learn_from = examples if args.learn_lines <= 0 else read_tokens(args.datasets,
                                                                        args.learn_lines)
        start = time.perf_counter()
        vocab = learn_vocabulary(learn_from, vocab_size=args.vocab_size,
                                 normalize=enc.normalize_token)
        print(f"learn_vocabulary(vocab_size={args.vocab_size}) on "
              f"{sum(len(t) for t in learn_from)} tokens ({len(learn_from)} utterances): "
              f"{time.perf_counter() - start:.1f} s, {len(vocab)} pieces")

    normalized = [[enc.normalize_token(t) for t in ex] for ex in examples]
    flat = [t for ex in normalized for t in ex]
    print("WordPiece splitter:")
    splitter = WordpieceSplitter(vocab)
    cold = timed(splitter.split_cached, flat, repeat=1)
    report("WordpieceSplitter, cold cache", cold, len(flat))
    warm = timed(splitter.split_cached, flat)
    report("WordpieceSplitter, warm cache", warm, len(flat))
    uncached = timed(WordpieceSplitter(vocab)._split, flat, repeat=1)
    report("WordpieceSplitter, no cache (every token)", uncached, len(flat))
    if args.tf_text:
        subset = normalized[:2000]
        n_sub = sum(len(t) for t in subset)
        splitter.split_with_tf_text(subset[0])  # builds the table and traces once
        whole = timed(splitter.split_with_tf_text, [[t for ex in subset for t in ex]], repeat=1)
        report("tf_text WordpieceTokenizer, one call", whole, n_sub)
        per = timed(splitter.split_with_tf_text, subset, repeat=1)
        report("tf_text WordpieceTokenizer, one call/example", per, n_sub)

    print(f"TextEncoder subword form (batch {args.batch_size}):")
    enc = TextEncoder(wordpiece=splitter)
    splitter._cache.clear()
    cold = timed(enc.encode_subwords_batch, batches, repeat=1)
    report("encode_subwords_batch, cold caches", cold, n_tokens)
    print("  stats of one epoch:", enc.stats.summary(enc).replace("\n", "; "))
    warm = timed(enc.encode_subwords_batch, batches)
    report("encode_subwords_batch, warm caches", warm, n_tokens)


if __name__ == "__main__":
    main()
