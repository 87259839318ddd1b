"""Tests for prado_tiny.layers.hashing: constants, overflow bounds, NumPy == TF primitives."""
import hashlib

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prado_tiny.layers import hashing as H

INT32_MAX = 2**31 - 1


def _is_prime(n: int) -> bool:
    return n > 1 and all(n % d for d in range(2, int(n**0.5) + 1))


def test_constants_are_what_the_overflow_argument_assumes():
    for p in H.POLY_PRIMES + H.FEISTEL_PRIMES + (H.BUCKET_PRIME,):
        assert _is_prime(p), p
    assert all(p < H.HALF for p in H.POLY_PRIMES + H.FEISTEL_PRIMES)
    # The residue pair determines a codepoint (CRT).
    assert H.POLY_PRIMES[0] * H.POLY_PRIMES[1] > H.MAX_CODEPOINT
    # Row-hash chunk: 64 terms of (p - 1) * (WEIGHT_BOUND - 1).
    assert H.CHUNK * (max(H.POLY_PRIMES) - 1) * (H.WEIGHT_BOUND - 1) <= INT32_MAX
    # Feistel round: r * M + K with r < 2^15, M < 2^16, K < Q < 2^15.
    assert (H.HALF - 1) * (2 * H.HALF - 1) + max(H.FEISTEL_PRIMES) - 1 <= INT32_MAX
    # MinHash keys: a rotated 30-bit view plus the invalid flag, XOR a 30-bit seed.
    assert (H.INVALID_KEY - 1) + H.INVALID_KEY <= INT32_MAX
    # Bucket finaliser: (v >> 15) * B + (v mod 2^15), B < 2^16.
    assert (H.HALF - 1) * (2 * H.HALF - 1) + H.HALF - 1 <= INT32_MAX


def test_derived_constants_are_pinned():
    # SplitMix64 on Python ints: the same numbers in every process and on every machine.
    assert H.splitmix64(0) == (0x9E3779B97F4A7C15, 0xE220A8397B1DCDAF)
    assert H.derive_ints(0, "weights", 4, 1, 1024) == H.derive_ints(0, "weights", 4, 1, 1024)
    digest = hashlib.sha256(np.concatenate([
        H.position_weights(0, 24).ravel(), H.minhash_constants(0, 64)[1],
        H.minhash_constants(0, 64)[2], np.concatenate([np.concatenate(k) for k in
                                                       H.feistel_keys(0, "ternary/word", 43)]),
    ]).astype("<i4").tobytes()).hexdigest()
    assert digest == PINNED_CONSTANTS_SHA256
    # A prefix of the weight stream does not depend on the requested length (row width).
    assert np.array_equal(H.position_weights(7, 40)[:5], H.position_weights(7, 5))
    assert not np.array_equal(H.position_weights(0, 8), H.position_weights(1, 8))


PINNED_CONSTANTS_SHA256 = "6cd84dba5522fd9ae9dd78f187967341fda5bbcbd2eb47ad476b8d863edf6d4e"


def test_ternary_byte_table():
    table = H.ternary_byte_table()
    assert table.shape == (256, 4)
    values, counts = np.unique(table, return_counts=True)
    assert values.tolist() == [-1, 0, 1] and counts.tolist() == [256, 512, 256]


class CheckedOps(H._NumpyOps):
    """The NumPy backend, computing in int64 and failing on any value outside int32."""

    @staticmethod
    def _check(x):
        x = np.asarray(x)
        assert x.min(initial=0) >= -(2**31) and x.max(initial=0) <= INT32_MAX, "int32 overflow"
        return x.astype(np.int32)

    @classmethod
    def _wide(cls, op):
        return lambda a, b: cls._check(op(np.asarray(a, np.int64), np.asarray(b, np.int64)))

    def __init__(self):
        self.mul = self._wide(np.multiply)
        self.add = self._wide(np.add)
        self.sub = self._wide(np.subtract)

    def reduce_sum(self, x, axis):
        return self._check(np.sum(np.asarray(x, np.int64), axis=axis))


EXTREMES = [0, 1, -1, 35, 0x7F, 0xFFFF, 0x10000, 0x10FFFF, 0x110000, 2**31 - 1, -(2**31)]
int32s = st.one_of(st.sampled_from(EXTREMES), st.integers(-(2**31), 2**31 - 1),
                   st.integers(0, 0x10FFFF))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.lists(int32s, min_size=1, max_size=70), min_size=1, max_size=3),
                min_size=1, max_size=4),
       st.integers(1, 5), st.integers(0, 2**63 - 1))
def test_no_intermediate_leaves_int32(rows, n, seed):
    """Every MUL/ADD/SUB/SUM result of the hash pipelines stays inside int32, for any input."""
    p = max(len(r) for r in rows)
    c = max(len(x) for r in rows for x in r)
    arr = np.zeros((len(rows), p, c), np.int32)
    for i, r in enumerate(rows):
        for j, x in enumerate(r):
            arr[i, j, :len(x)] = x
    checked = CheckedOps()
    elems, valid = H.token_elements(checked, arr, n, seed, p, c)
    fp = H.minhash_fingerprints(checked, elems, valid, 64, seed)
    H.minhash_buckets(checked, fp, 64, 1024, seed)
    H.ternary_words(checked, arr[:, 0], 100, seed, c)
    # ...and the checked run equals the plain int32 run.
    e2, v2 = H.token_elements(H.NP, arr, n, seed, p, c)
    assert np.array_equal(elems, e2) and np.array_equal(valid, v2)
    assert elems.min() >= 0 and elems.max() < 2**30


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf
    return tf


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(int32s, min_size=3, max_size=40), min_size=1, max_size=5),
       st.integers(0, 2**31))
def test_numpy_and_tensorflow_primitives_agree(tf, rows, seed):
    c = max(len(r) for r in rows)
    arr = np.zeros((len(rows), 1, c), np.int32)
    for i, r in enumerate(rows):
        arr[i, 0, :len(r)] = r
    t = tf.constant(arr)
    res_np = H.char_residues(H.NP, arr)
    res_tf = H.char_residues(H.TF, t)
    for a, b in zip(res_np, res_tf):
        assert np.array_equal(a, b.numpy())
    for a, b in zip(H.row_hash(H.NP, *res_np[:2], seed, c), H.row_hash(H.TF, *res_tf[:2], seed, c)):
        assert np.array_equal(a, b.numpy())
    e_np, v_np = H.token_elements(H.NP, arr, 3, seed, 1, c)
    e_tf, v_tf = H.token_elements(H.TF, t, 3, seed, 1, c)
    assert np.array_equal(e_np, e_tf.numpy()) and np.array_equal(v_np, v_tf.numpy())
    fp_np = H.minhash_fingerprints(H.NP, e_np, v_np, 64, seed)
    fp_tf = H.minhash_fingerprints(H.TF, e_tf, v_tf, 64, seed)
    assert np.array_equal(fp_np, fp_tf.numpy())
    b_np, n_np = H.minhash_buckets(H.NP, fp_np, 64, 1000, seed)
    b_tf, n_tf = H.minhash_buckets(H.TF, fp_tf, 64, 1000, seed)
    assert np.array_equal(b_np, b_tf.numpy()) and np.array_equal(n_np, n_tf.numpy())
    w_np, ne_np = H.ternary_words(H.NP, arr[:, 0], 30, seed, c)
    w_tf, ne_tf = H.ternary_words(H.TF, t[:, 0], 30, seed, c)
    assert np.array_equal(w_np, w_tf.numpy()) and np.array_equal(ne_np, ne_tf.numpy())


def test_row_hash_ignores_padding_width_and_chunks_long_rows():
    rng = np.random.default_rng(0)
    row = rng.integers(1, 0x110000, size=150).astype(np.int32)
    narrow = np.zeros((1, 150), np.int32)
    wide = np.zeros((1, 300), np.int32)
    narrow[0], wide[0, :150] = row, row
    a = H.row_hash(H.NP, *H.char_residues(H.NP, narrow)[:2], 3, 150)
    b = H.row_hash(H.NP, *H.char_residues(H.NP, wide)[:2], 3, 300)
    assert np.array_equal(a, b)
    # Rows of at most 64 characters: one chunk, whatever the static width.
    short = np.zeros((1, 64), np.int32)
    short[0, :10] = row[:10]
    c = H.row_hash(H.NP, *H.char_residues(H.NP, short)[:2], 3, 64)
    d = H.row_hash(H.NP, *H.char_residues(H.NP, short[:, :10])[:2], 3, 10)
    assert np.array_equal(c, d)


def test_an_ngram_hashes_like_the_row_holding_it():
    word = np.array([[104, 101, 108, 108, 111]], np.int32)  # "hello"
    g1, g2, ok = H.ngram_hashes(H.NP, *H.char_residues(H.NP, word), 3, 0)
    for i in range(3):
        single = np.zeros((1, 3), np.int32)
        single[0] = word[0, i:i + 3]
        h1, h2 = H.row_hash(H.NP, *H.char_residues(H.NP, single)[:2], 0, 3)
        assert (g1[0, i], g2[0, i]) == (h1[0], h2[0])
    assert ok.tolist() == [[1, 1, 1]]


def test_feistel_is_a_permutation():
    hi, lo = np.divmod(np.arange(1 << 18, dtype=np.int32) * 4093 % (1 << 30), H.HALF)
    a, b = H.feistel(H.NP, hi.astype(np.int32), lo.astype(np.int32), H.feistel_keys(5, "t"))
    assert a.max() < H.HALF and b.max() < H.HALF
    assert len(np.unique(a.astype(np.int64) * H.HALF + b)) == len(hi)


def test_bit_balance_of_element_hashes():
    rows = np.arange(1, 20001, dtype=np.int32).reshape(-1, 1)
    x = H.mix(H.NP, *H.row_hash(H.NP, *H.char_residues(H.NP, rows)[:2], 0, 1), 0, "minhash/element")
    bits = (x[:, None] >> np.arange(30)) & 1
    assert np.all(np.abs(bits.mean(axis=0) - 0.5) < 0.02)
