"""What the hashing projections do to MTOP's real vocabulary.

* Ternary projection: the fractions of -1 / 0 / +1 over the features of every distinct token and
  over every token occurrence (F = 512 and 4096), and how many distinct tokens share a ternary
  vector.
* MinHash projection (64 hashes, trigrams, Bloom filter m = 1024): the rate at which distinct
  tokens of MTOP's vocabulary collide on identical Bloom features (identical count vectors), with
  whole-token pieces (each token one piece) and with WordPiece pieces (a 4000-piece vocabulary
  learned on MTOP's six training sets, or --vocab), per language and overall. Tokens are
  normalised as the model sees them (TextEncoder: NFKC, lower-case, 24 chars per piece); tokens
  that become identical only through truncation at 24 chars are counted separately.

Usage:
  python benchmarks/measure_projection_stats.py [--datasets DIR] [--splits train,eval]
      [--vocab FILE]
"""
import argparse
import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from prado_tiny.bench.machine import describe_machine  # noqa: E402

import bench_projection as B  # noqa: E402
from prado_tiny.data.text_encoder import TextEncoder  # noqa: E402
from prado_tiny.layers import minhash_projection as M  # noqa: E402
from prado_tiny.layers import ternary_projection as TP  # noqa: E402


def vocabulary(enc: TextEncoder, utterances):
    """Distinct normalised tokens (as the encoder sees them) and the token occurrences."""
    occurrences = [enc.normalize_token(t) for u in utterances for t, _, _ in enc.tokenize(u)]
    return sorted(set(occurrences)), occurrences


def encode(enc: TextEncoder, tokens, subwords: bool) -> np.ndarray:
    chunks = [tokens[i:i + enc.max_tokens] for i in range(0, len(tokens), enc.max_tokens)]
    if subwords:
        arr = enc.encode_subwords_batch(chunks).reshape(-1, enc.max_pieces, enc.max_chars)
    else:
        arr = enc.encode_tokens_batch(chunks).reshape(-1, 1, enc.max_chars)
    return arr[:len(tokens)]


def element_sets(arr: np.ndarray):
    """Each token's set of MinHash elements (30-bit element hashes), as a frozenset."""
    grams, gtok, wholes, wtok = M._token_elements_np(M._trim_np(arr, 3), 3, 0)
    sets = [set() for _ in range(len(arr))]
    for e, t in zip(np.concatenate([grams, wholes]), np.concatenate([gtok, wtok])):
        sets[t].add(int(e))
    return [frozenset(x) for x in sets]


def bloom_collisions(arr: np.ndarray, tokens):
    """Distinct tokens whose Bloom count vectors (m = 1024) equal another distinct token's.

    Returns a dict: `tokens` in colliding groups of distinct inputs, `groups`, `same_set` (of
    those tokens, the ones whose element set equals another member's: every MinHash collides on
    identical sets, e.g. WordPiece's piece sets lose the order of the pieces), `truncated`
    (tokens whose input rows equal another token's: merged by truncation, not by hashing), and
    `examples` of groups with different element sets.
    """
    fp = M.token_fingerprints_np(arr, 64, 3)
    buckets, nonempty = M.minhash_buckets_np(fp, 64, 1024)
    assert nonempty.all()
    keys = np.sort(buckets, axis=1)  # the count vector is the multiset of buckets
    groups = collections.defaultdict(list)
    for i, k in enumerate(keys):
        groups[k.tobytes()].append(i)
    rows = collections.defaultdict(list)
    for i, r in enumerate(arr.reshape(len(arr), -1)):
        rows[r.tobytes()].append(i)
    truncated = sum(len(g) for g in rows.values() if len(g) > 1)
    sets = element_sets(arr)
    out = dict(tokens=0, groups=0, same_set=0, truncated=truncated, examples=[], same_examples=[])
    for g in groups.values():
        distinct_inputs = {}
        for i in g:
            distinct_inputs.setdefault(arr[i].tobytes(), i)
        members = list(distinct_inputs.values())
        if len(members) < 2:
            continue
        out["groups"] += 1
        out["tokens"] += len(members)
        by_set = collections.Counter(sets[i] for i in members)
        same = [i for i in members if by_set[sets[i]] > 1]
        out["same_set"] += len(same)
        names = [tokens[i] for i in members][:4]
        if len(same) < len(members):
            out["examples"].append(names)
        else:
            out["same_examples"].append(names)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=B.DEFAULT_DATASETS)
    parser.add_argument("--splits", default="train,eval")
    parser.add_argument("--vocab", default=None)
    args = parser.parse_args(argv)
    print("machine:", describe_machine())
    print("command:", " ".join([sys.executable] + sys.argv))
    enc = B.encoder_with_vocabulary(args.datasets, args.vocab)
    print(f"WordPiece vocabulary: {len(enc.wordpiece)} pieces "
          f"({'from ' + args.vocab if args.vocab else 'learned on MTOP train, six languages'})")
    splits = args.splits.split(",")

    print("\nTernary projection: fractions of -1 / 0 / +1")
    all_utts = [u for s in splits for u in B.read_utterances(args.datasets, B.LANGUAGES, s)]
    vocab, occ = vocabulary(enc, all_utts)
    distinct = encode(enc, vocab, False)[:, 0, :]
    counts = collections.Counter(occ)
    weights = np.array([counts[t] for t in vocab], np.float64)
    for f in (512, 4096):
        feats = TP.ternary_features_np(distinct, f, dtype=np.int8)
        frac = [float(np.mean(feats == v)) for v in (-1, 0, 1)]
        w = [float((weights[:, None] * (feats == v)).sum() / (weights.sum() * f)) for v in (-1, 0, 1)]
        rows = {feats[i].tobytes() for i in range(len(feats))}
        print(f"  F={f}: distinct tokens ({len(vocab)}): -1 {frac[0]:.4f}  0 {frac[1]:.4f}  "
              f"+1 {frac[2]:.4f};  occurrences ({len(occ)}): -1 {w[0]:.4f}  0 {w[1]:.4f}  "
              f"+1 {w[2]:.4f};  distinct tokens sharing a ternary vector: "
              f"{len(vocab) - len(rows)}")

    print("\nMinHash projection (64 hashes, trigrams, m = 1024): distinct tokens whose Bloom "
          "features equal another distinct token's")
    for lang in B.LANGUAGES + ("all",):
        langs = B.LANGUAGES if lang == "all" else (lang,)
        utts = [u for s in splits for u in B.read_utterances(args.datasets, langs, s)]
        vocab, _ = vocabulary(enc, utts)
        for form, sub in (("whole-token pieces", False), ("WordPiece pieces", True)):
            arr = encode(enc, vocab, sub)
            r = bloom_collisions(arr, vocab)
            other = r["tokens"] - r["same_set"]
            print(f"  {lang:>3} {form:<18}: {len(vocab):6d} distinct tokens; {r['tokens']} "
                  f"({r['tokens'] / len(vocab):.3%}) in {r['groups']} colliding groups, of which "
                  f"{r['same_set']} have identical element sets (any MinHash collides there) "
                  f"and {other} ({other / len(vocab):.3%}) different sets; "
                  f"{r['truncated']} tokens merged by truncation")
            if r["same_examples"]:
                print(f"        identical sets, e.g. {r['same_examples'][:4]}")
            if r["examples"]:
                print(f"        different sets, e.g. {r['examples'][:4]}")


if __name__ == "__main__":
    main()
