"""MinHashProjection: pNLP-Mixer's non-trainable MinHash + counting-Bloom-filter projection.

Follows Fusco et al., "pNLP-Mixer: an Efficient all-MLP Architecture for Language" (ACL 2023
Industry, arXiv 2202.04350): every subword unit gets a MinHash fingerprint of `num_hashes` values
over its character n-grams (short pieces and continuation pieces hashed whole); a token's
fingerprint is the element-wise min over its pieces (MinHash of a union); the fingerprint is
written into a counting Bloom filter of size m (feature[j] = number of hash values landing in
bucket j); the features of the w tokens on each side are concatenated.

The same computation exists three times, bit for bit:

* `MinHashProjection`, a Keras layer over int32 codepoints that converts to TFLite builtin integer
  ops (the model reads codepoints; no custom or Flex op, no value beyond int32);
* `minhash_features_np` and friends, a vectorised NumPy implementation over the valid n-grams only
  (training precomputes features with it);
* `MinHashFeaturizer`, the NumPy implementation with a fingerprint cache per distinct piece.

How the hashes are built (constants and the overflow argument: `prado_tiny/layers/hashing.py`):

1. Elements. The first piece of a token contributes its character n-grams, or itself hashed
   whole when it is shorter than `ngram_size` or starts with '##'; every later piece is a
   WordPiece continuation piece and is hashed whole. Row and n-gram hashes are weighted sums of
   the codepoints' residues modulo two primes below 2^15; a keyed 4-round Feistel permutation
   turns the pair into a 30-bit element hash `x`.
2. MinHash. Hash k orders the elements by `rot_g(x) XOR s_k` (g = k mod 8: eight rotated views
   of x, `s_k` a 30-bit seed): one XOR per (element, hash), then REDUCE_MIN over the token's
   elements (all pieces at once: MinHash of a union is the min of the pieces' MinHashes).
   Padding elements get 2^30 added, so they never win the min.
3. Buckets. The minimum `v` of hash k maps to bucket `((v >> 15) * B_k + v mod 2^15) mod P mod m`.
4. Counting Bloom filter by SCATTER_ND (duplicates add up), then the window concatenation.

In the graph, trailing padding (tokens, pieces, characters beyond the last real one in the
batch) is sliced off first: an exact step (only padding is cut) that makes the hashing cost
proportional to the real text instead of the padded [tokens, pieces, chars] shape; the
counting Bloom filter is scattered back into the static [batch, tokens, m] output.

Padding: an all-padding token (no valid element) produces all-zero features, so padded positions
carry nothing; window positions beyond the sequence are zeros too. An all-padding piece adds no
element to its token's min.

Output dtype: float32 holding exact small integers (counts 0..num_hashes <= 127), produced by a
CAST and pinned by a fake-quant node to the int8 grid with scale 1 and zero point 0 (exact in
float). The int8 converter emits CAST(int32->float32) + QUANTIZE for it;
`prado_tiny.export.inspect.fold_exact_int8_casts` folds the pair into one CAST(int32->int8),
after which the model holds no float tensor and the counts feed the quantized FULLY_CONNECTED
directly. (A GATHER from a constant table also yields int8 without the fold, but costs ~35x more
per element in TFLite.) With `int_output=True` the layer returns the int32 counts instead.
"""
from __future__ import annotations

import collections
from typing import Optional, Tuple

import numpy as np

from prado_tiny.layers import hashing as H
from prado_tiny.layers.hashing import NP, TF

_EMPTY = np.int32(H.INVALID_KEY)


#: Name of the CAST whose float output `fold_exact_int8_casts` turns into an int8 CAST.
EXACT_INT8_CAST = "exact_int8_cast"


def _check_args(num_hashes, ngram_size, bloom_size, window):
    if not 1 <= num_hashes <= 127:
        # Counts up to num_hashes must be exact on the int8 grid (scale 1, zero point 0).
        raise ValueError(f"num_hashes must be in [1, 127], got {num_hashes}")
    if not 1 <= ngram_size <= H.CHUNK:
        raise ValueError(f"ngram_size must be in [1, {H.CHUNK}], got {ngram_size}")
    if not 1 <= bloom_size <= H.BUCKET_PRIME // 64:
        raise ValueError(f"bloom_size must be in [1, {H.BUCKET_PRIME // 64}], got {bloom_size}")
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")


# ---------------------------------------------------------------------------------------------
# Backend-generic reference (padded layout). The Keras layer runs it on TF; tests run it on NumPy.

def fingerprints(ops, pieces, num_hashes: int, ngram_size: int, seed: int,
                 static_pieces: int, static_chars: int):
    """int32 [N, P, C] pieces of N tokens -> int32 [N, H] token fingerprints (element minima).

    Entries >= INVALID_KEY mean the token has no valid element (padding).
    """
    elems, valid = H.token_elements(ops, pieces, ngram_size, seed, static_pieces, static_chars)
    return H.minhash_fingerprints(ops, elems, valid, num_hashes, seed)


# ---------------------------------------------------------------------------------------------
# TensorFlow pieces, public so that a training pipeline can densify cached buckets in-graph.

def bloom_counts_tf(buckets, nonempty, rows, bloom_size: int, num_rows):
    """Counting Bloom filter by SCATTER_ND (duplicate buckets add up).

    buckets: int32 [N, H]; nonempty: [N] 0/1; rows: [N] output row of each token; returns
    int32 [num_rows, m]. Flat indices `row * m + bucket` must stay below 2^31.
    """
    import tensorflow as tf
    index = tf.reshape(tf.expand_dims(rows * bloom_size, -1) + buckets, [-1, 1])
    updates = tf.reshape(tf.expand_dims(nonempty, -1) + tf.zeros_like(buckets), [-1])
    counts = tf.scatter_nd(index, updates, tf.reshape(num_rows * bloom_size, [1]))
    return tf.reshape(counts, tf.stack([num_rows, bloom_size]) if not isinstance(num_rows, int)
                      else [num_rows, bloom_size])


def window_concat_tf(x, window: int):
    """[B, T, D] -> [B, T, (2w+1) D]: block j of token t holds token t - w + j (zeros outside)."""
    import tensorflow as tf
    if window == 0:
        return x
    t = x.shape[1]
    padded = tf.pad(x, [[0, 0], [window, window], [0, 0]])
    return tf.concat([tf.slice(padded, [0, j, 0], [-1, t, -1]) for j in range(2 * window + 1)],
                     axis=-1)


def exact_int8(x):
    """int32 small integers -> float32, pinned to the int8 grid with scale 1 and zero point 0.

    The converter turns this into CAST(int32->float32) + QUANTIZE; `fold_exact_int8_casts`
    (prado_tiny.export.inspect) folds the pair into one CAST(int32->int8). Values must lie in
    [-128, 127]: counts do, since num_hashes <= 127 (`_check_args`).
    """
    import tensorflow as tf
    f = tf.cast(x, tf.float32, name=EXACT_INT8_CAST)
    return tf.quantization.fake_quant_with_min_max_args(f, min=-128.0, max=127.0, num_bits=8)


def bloom_features_tf(buckets, nonempty, bloom_size: int = 1024, window: int = 1):
    """Cached sparse features -> dense float32 features, in a training graph.

    buckets: int [B, T, H] and nonempty: int [B, T], as `MinHashFeaturizer.buckets` returns them
    (a compact form to cache: H small ints per token instead of (2w+1) m floats). Returns
    float32 [B, T, (2w+1) m], equal to `minhash_features_np` and to the layer's output.
    """
    import tensorflow as tf
    buckets = tf.cast(buckets, tf.int32)
    shape = tf.shape(buckets)
    b, t, h = buckets.shape.as_list()
    b = b if b is not None else shape[0]
    t = t if t is not None else shape[1]
    rows = b * t
    counts = bloom_counts_tf(tf.reshape(buckets, [-1, h]), tf.reshape(tf.cast(nonempty, tf.int32), [-1]),
                             tf.range(rows, dtype=tf.int32), bloom_size, rows)
    counts = tf.reshape(counts, tf.stack([b, t, bloom_size]))
    if buckets.shape[1] is None:
        raise ValueError("bloom_features_tf needs a static token axis (for the window)")
    return window_concat_tf(tf.cast(counts, tf.float32), window)


def minhash_features_tf(codepoints, num_hashes: int = 64, ngram_size: int = 3,
                        bloom_size: int = 1024, window: int = 1, seed: int = 0,
                        int_output: bool = False):
    """What `MinHashProjection` computes: [B, T, (P,) C] codepoints -> [B, T, (2w+1) m]."""
    import tensorflow as tf
    x = tf.cast(codepoints, tf.int32)
    if x.shape.rank == 3:
        x = tf.expand_dims(x, 2)
    if x.shape.rank != 4 or any(d is None for d in x.shape[1:]):
        raise ValueError(f"expected [batch, tokens, (pieces,) chars] with static tokens, pieces "
                         f"and chars, got {codepoints.shape}")
    _, t, p, c = x.shape.as_list()
    batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    trimmed = H.trim_padding_tf(x, ngram_size)
    t_used = tf.shape(trimmed)[1]
    pieces = tf.reshape(trimmed, tf.stack([-1, tf.shape(trimmed)[2], tf.shape(trimmed)[3]]))
    fp = fingerprints(TF, pieces, num_hashes, ngram_size, seed, p, c)
    buckets, nonempty = H.minhash_buckets(TF, fp, num_hashes, bloom_size, seed)
    # Output row of each used token: b * T + t.
    grid = tf.reshape(tf.range(batch * t, dtype=tf.int32), tf.stack([batch, t]))
    rows = tf.reshape(tf.slice(grid, [0, 0], tf.stack([-1, t_used])), [-1])
    counts = bloom_counts_tf(buckets, nonempty, rows, bloom_size, batch * t)
    counts = tf.reshape(counts, tf.stack([batch, t, bloom_size]) if not isinstance(batch, int)
                        else [batch, t, bloom_size])
    if int_output:
        return window_concat_tf(counts, window)
    return window_concat_tf(exact_int8(counts), window)


# ---------------------------------------------------------------------------------------------
# The Keras layer.

def _keras():
    import tf_keras
    return tf_keras


def _make_layer_class():
    keras = _keras()

    @keras.utils.register_keras_serializable(package="prado_tiny")
    class MinHashProjection(keras.layers.Layer):
        """pNLP-Mixer's MinHash projection over int32 codepoints, in TFLite builtin integer ops.

        Follows Fusco et al., "pNLP-Mixer: an Efficient all-MLP Architecture for Language"
        (arXiv 2202.04350), section 2.1. Non-trainable. Bit-identical to `minhash_features_np`.

        Args:
          num_hashes: MinHash fingerprint length (1..127; the paper uses 64).
          ngram_size: character n-gram length (3). A token's first piece contributes its
            n-grams; a first piece shorter than this or starting with '##' (codepoints 35 35),
            and every later piece (a WordPiece continuation piece), is hashed whole.
          bloom_size: m, the counting Bloom filter size (1024 for Base).
          window: w, tokens concatenated on each side (1 for Base, 0 for X-Small).
          seed: selects the hash functions (any int; same seed, same features everywhere).
          int_output: return int32 counts instead of float32 features.
          **kwargs: passed to `keras.layers.Layer`.

        Input: int32 `[batch, tokens, chars]` (each token one piece) or
        `[batch, tokens, pieces, chars]`; 0 is padding. Static `tokens`, `pieces`, `chars`.
        Output: `[batch, tokens, (2 * window + 1) * bloom_size]`, float32 exact counts pinned to
        the int8 grid (see `exact_int8`), or int32 counts with `int_output=True`.

        Example:

        >>> layer = MinHashProjection(num_hashes=64, ngram_size=3, bloom_size=1024, window=1)
        >>> codepoints = tf.constant([[[104, 105, 0, 0], [0, 0, 0, 0]]])  # "hi", padding
        >>> layer(codepoints).shape
        TensorShape([1, 2, 3072])
        """

        def __init__(self, num_hashes: int = 64, ngram_size: int = 3, bloom_size: int = 1024,
                     window: int = 1, seed: int = 0, int_output: bool = False, **kwargs):
            kwargs.setdefault("trainable", False)
            super().__init__(**kwargs)
            _check_args(num_hashes, ngram_size, bloom_size, window)
            self.num_hashes = int(num_hashes)
            self.ngram_size = int(ngram_size)
            self.bloom_size = int(bloom_size)
            self.window = int(window)
            self.seed = int(seed)
            self.int_output = bool(int_output)

        def build(self, input_shape):
            shape = list(input_shape)
            if len(shape) not in (3, 4) or any(d is None for d in shape[1:]):
                raise ValueError(f"expected [batch, tokens, (pieces,) chars] with static tokens, "
                                 f"pieces and chars, got {input_shape}")
            super().build(input_shape)

        def call(self, codepoints):
            return minhash_features_tf(codepoints, self.num_hashes, self.ngram_size,
                                       self.bloom_size, self.window, self.seed, self.int_output)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[1], (2 * self.window + 1) * self.bloom_size)

        def get_config(self):
            config = super().get_config()
            config.update(num_hashes=self.num_hashes, ngram_size=self.ngram_size,
                          bloom_size=self.bloom_size, window=self.window, seed=self.seed,
                          int_output=self.int_output)
            return config

    return MinHashProjection


def __getattr__(name):
    # The layer class needs TensorFlow; the NumPy host path must not import it.
    if name == "MinHashProjection":
        cls = _make_layer_class()
        cls.__qualname__ = name
        globals()[name] = cls
        return cls
    raise AttributeError(name)


# ---------------------------------------------------------------------------------------------
# NumPy host implementation: only the valid elements are hashed.

def _live(rows: np.ndarray) -> np.ndarray:
    """Indices of the rows (any trailing shape) holding at least one real codepoint."""
    return np.flatnonzero((rows.reshape(rows.shape[0], -1) > 0).any(axis=1))


_ROW_MULTIPLIERS = np.array(H.derive_ints(0, "row-key", 4096, 1, 1 << 63), dtype=np.uint64) | np.uint64(1)


def unique_rows(rows: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Distinct rows of an int32 [K, C] array and the inverse index (as np.unique(axis=0)).

    Rows are keyed by a 64-bit multiply-add of their values, then every row is compared with
    its group's representative, so a key collision can never merge distinct rows (it falls back
    to the exact, slower byte-wise unique).
    """
    k, c = rows.shape
    if c > len(_ROW_MULTIPLIERS):
        view = np.ascontiguousarray(rows).view(np.dtype((np.void, 4 * c))).reshape(-1)
        _, index, inverse = np.unique(view, return_index=True, return_inverse=True)
        return rows[index], inverse.reshape(-1)
    with np.errstate(over="ignore"):
        keys = rows.astype(np.uint64) @ _ROW_MULTIPLIERS[:c] if k else np.zeros(0, np.uint64)
    _, index, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    uniq = rows[index]
    if not np.array_equal(uniq[inverse], rows):
        view = np.ascontiguousarray(rows).view(np.dtype((np.void, 4 * c))).reshape(-1)
        _, index, inverse = np.unique(view, return_index=True, return_inverse=True)
        return rows[index], inverse.reshape(-1)
    return uniq, inverse


def _fingerprints_from_elements(elems: np.ndarray, owner: np.ndarray, count: int,
                                num_hashes: int, seed: int) -> np.ndarray:
    """Per-owner minima of the MinHash keys of `elems`; owners without elements -> EMPTY.

    Owners are grouped by their number of elements e, so that each group is one dense
    [tokens, e, H] minimum (much faster in NumPy than a segmented reduction).
    """
    out = np.full((count, num_hashes), _EMPTY, np.int32)
    if not len(owner):
        return out
    order = np.argsort(owner, kind="stable")
    elems = elems[order]
    sizes = np.bincount(owner, minlength=count)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for e in np.unique(sizes[sizes > 0]):
        toks = np.flatnonzero(sizes == e)
        idx = (starts[toks][:, None] + np.arange(e)).reshape(-1)
        keys = _keys_of_valid(elems[idx], num_hashes, seed).reshape(len(toks), e, num_hashes)
        out[toks] = keys.min(axis=1)
    return out


def _keys_of_valid(elems: np.ndarray, num_hashes: int, seed: int) -> np.ndarray:
    """[E] valid element hashes -> [E, H] MinHash keys (as `hashing.minhash_fingerprints`)."""
    views, seeds, _ = H.minhash_constants(seed, num_hashes)
    shifts = np.array([H.HASH_BITS * g // views for g in range(views)], np.int32)
    x = elems[:, None]
    # rotations(): (x >> s) + (x mod 2^s) * 2^(30 - s); x >= 0, so mod 2^s is a mask.
    rot = (x >> shifts) + (x & ((1 << shifts) - 1)) * (np.int32(1) << (H.HASH_BITS - shifts))
    reps = -(-num_hashes // views)
    tiled = np.tile(rot, (1, reps))[:, :num_hashes] if reps > 1 else rot[:, :num_hashes]
    return np.bitwise_xor(tiled, seeds)


def _trim_np(tokens: np.ndarray, min_chars: int) -> np.ndarray:
    """[K, P, C] -> the same without all-padding trailing pieces and characters (exact)."""
    nz = tokens > 0
    pieces = np.flatnonzero(nz.any(axis=(0, 2)))
    chars = np.flatnonzero(nz.any(axis=(0, 1)))
    p = max(int(pieces[-1]) + 1 if len(pieces) else 1, 1)
    c = max(int(chars[-1]) + 1 if len(chars) else 1, min(min_chars, tokens.shape[2]))
    return tokens[:, :p, :c]


def _residue_pairs(chars: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Codepoints (> 0) -> their residues modulo the two POLY_PRIMES (int32, same shape)."""
    return chars % np.int32(H.POLY_PRIMES[0]), chars % np.int32(H.POLY_PRIMES[1])


def _weighted_mod(r1, r2, w: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """[E, k] residues and [k, 2] weights -> per-prime sums mod p (k <= CHUNK, as row_hash)."""
    h1 = (r1 * w[:, 0]).sum(axis=1, dtype=np.int32) % np.int32(H.POLY_PRIMES[0])
    h2 = (r2 * w[:, 1]).sum(axis=1, dtype=np.int32) % np.int32(H.POLY_PRIMES[1])
    return h1, h2


def _mix_np(h1: np.ndarray, h2: np.ndarray, seed: int) -> np.ndarray:
    """(h1, h2) -> 30-bit element hashes: `hashing.mix` on flat arrays."""
    hi, lo = H.feistel(NP, h1, h2, H.feistel_keys(seed, "minhash/element"))
    return hi * np.int32(H.HALF) + lo


def _row_hashes_np(rows: np.ndarray, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """[K, C] rows -> `hashing.row_hash` of each, computed over the non-zero characters only."""
    k, c = rows.shape
    r, i = np.nonzero(rows > 0)
    w = H.position_weights(seed, max(c, 1))
    out = []
    for j, p in enumerate(H.POLY_PRIMES):
        terms = (rows[r, i] % np.int32(p)) * w[i, j]  # < 2^25
        if c <= H.CHUNK:
            sums = np.bincount(r, weights=terms, minlength=k)  # exact: < 2^31 in float64
            out.append((sums.astype(np.int64) % p).astype(np.int32))
        else:  # as row_hash: chunks of CHUNK characters, each reduced mod p
            acc = np.zeros(k, np.int64)
            for start in range(0, c, H.CHUNK):
                sel = (i >= start) & (i < start + H.CHUNK)
                part = np.bincount(r[sel], weights=terms[sel], minlength=k).astype(np.int64) % p
                acc = (acc + part) % p
            out.append(acc.astype(np.int32))
    return out[0], out[1]


def _token_elements_np(tokens: np.ndarray, ngram_size: int, seed: int):
    """The valid elements of `hashing.token_elements`, computed only where they are valid.

    tokens: int32 [K, P, C]. Returns (n-gram element hashes, their token ids, whole-piece element
    hashes, their token ids); both id arrays are sorted.
    """
    k, p, c = tokens.shape
    first = tokens[:, 0, :]
    nz = first > 0
    nchars = nz.sum(axis=1)
    if c >= ngram_size:
        is_whole = nchars < ngram_size
        if c >= 2:
            is_whole |= (first[:, 0] == H.HASH_MARK) & (first[:, 1] == H.HASH_MARK)
        span = c - ngram_size + 1
        ok = nz[:, :span].copy()
        for j in range(1, ngram_size):
            ok &= nz[:, j:j + span]
        ok &= ~is_whole[:, None]
        tok, pos = np.nonzero(ok)
        idx = pos[:, None] + np.arange(ngram_size)
        grams = first[tok[:, None], idx]  # [E, n]
        r1, r2 = _residue_pairs(grams)
        g1, g2 = _weighted_mod(r1, r2, H.position_weights(seed, ngram_size))
        gram_elems = _mix_np(g1, g2, seed)
    else:
        is_whole = np.ones(k, bool)
        tok = np.zeros(0, np.int64)
        gram_elems = np.zeros(0, np.int32)
    nonempty = (tokens > 0).any(axis=2)  # [K, P]
    wvalid = nonempty.copy()
    wvalid[:, 0] &= is_whole
    wtok, wpiece = np.nonzero(wvalid)
    if len(wtok):
        w1, w2 = _row_hashes_np(tokens[wtok, wpiece], seed)
        whole_elems = _mix_np(w1, w2, seed)
    else:
        whole_elems = np.zeros(0, np.int32)
    return gram_elems, tok, whole_elems, wtok


def token_fingerprints_np(tokens, num_hashes: int = 64, ngram_size: int = 3, seed: int = 0,
                          chunk: int = 16384) -> np.ndarray:
    """int32 [K, P, C] pieces of K tokens -> int32 [K, H]; tokens without elements -> INVALID_KEY.

    Hashes only the valid elements (n-grams of split first pieces, whole pieces otherwise), in
    chunks of `chunk` tokens; bit-identical to `fingerprints` (the layer's computation).
    """
    tokens = H.check_codepoints(tokens)
    if tokens.ndim != 3:
        raise ValueError(f"tokens must be [K, P, C], got {tokens.shape}")
    out = np.full((tokens.shape[0], num_hashes), _EMPTY, np.int32)
    live = _live(tokens)
    for start in range(0, len(live), chunk):
        ids = live[start:start + chunk]
        part = _trim_np(tokens[ids], ngram_size)
        gram_elems, gram_tok, whole_elems, whole_tok = _token_elements_np(part, ngram_size, seed)
        fp = _fingerprints_from_elements(np.concatenate([gram_elems, whole_elems]),
                                         np.concatenate([gram_tok, whole_tok]), len(ids),
                                         num_hashes, seed)
        out[ids] = fp
    return out


def reference_fingerprints_np(tokens, num_hashes: int = 64, ngram_size: int = 3,
                              seed: int = 0) -> np.ndarray:
    """The layer's own computation (`fingerprints`) run by NumPy on the padded tensor; slow.

    Tokens without valid elements get INVALID_KEY throughout (the padded computation leaves
    other values >= INVALID_KEY there).
    """
    tokens = H.check_codepoints(tokens)
    _, p, c = tokens.shape
    fp = fingerprints(NP, tokens, num_hashes, ngram_size, seed, p, c)
    fp[fp[:, 0] >= H.INVALID_KEY] = _EMPTY
    return fp


def _as_token_pieces(pieces: np.ndarray) -> np.ndarray:
    """[T, C], [B, T, C] -> [K, 1, C]; [B, T, P, C] -> [K, P, C]."""
    if pieces.ndim not in (2, 3, 4):
        raise ValueError(f"pieces must be [T, C], [B, T, C] or [B, T, P, C], got {pieces.shape}")
    if pieces.ndim == 4:
        return pieces.reshape((-1,) + pieces.shape[-2:])
    return pieces.reshape(-1, 1, pieces.shape[-1])


def _token_shape(pieces: np.ndarray, num_hashes: int):
    lead = pieces.shape[:-2] if pieces.ndim == 4 else pieces.shape[:-1]
    return tuple(lead) + (num_hashes,)


def minhash_fingerprints_np(pieces, num_hashes: int = 64, ngram_size: int = 3, seed: int = 0,
                            chunk: int = 32768) -> np.ndarray:
    """int32 [T, C], [B, T, C] or [B, T, P, C] codepoints -> int32 [(B,) T, H] fingerprints.

    Uncached and vectorised over every valid n-gram of the batch. A token without any valid
    element (padding) gets INVALID_KEY throughout.
    """
    pieces = H.check_codepoints(pieces)
    fp = token_fingerprints_np(_as_token_pieces(pieces), num_hashes, ngram_size, seed, chunk)
    return fp.reshape(_token_shape(pieces, num_hashes))


def minhash_buckets_np(fingerprints_, num_hashes: int = 64, bloom_size: int = 1024,
                       seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
    """[..., H] fingerprints -> (int32 [..., H] buckets in [0, m), int32 [...] 0/1 non-empty).

    `hashing.minhash_buckets` for the non-empty tokens; empty tokens get buckets 0.
    """
    fp = np.asarray(fingerprints_, np.int32)
    _, _, mults = H.minhash_constants(seed, num_hashes)
    nonempty = fp[..., 0] < H.INVALID_KEY
    live = fp[nonempty]  # valid minima are below 2^30: `mod INVALID_KEY` is the identity
    y = ((live >> H.HALF_BITS) * mults + (live & (H.HALF - 1))) % np.int32(H.BUCKET_PRIME)
    y = y & np.int32(bloom_size - 1) if bloom_size & (bloom_size - 1) == 0 else y % np.int32(bloom_size)
    buckets = np.zeros(fp.shape, np.int32)
    buckets[nonempty] = y
    return buckets, nonempty.astype(np.int32)


def bloom_counts_np(buckets: np.ndarray, nonempty: np.ndarray, bloom_size: int,
                    dtype=np.float32) -> np.ndarray:
    """[..., H] buckets, [...] 0/1 -> [..., m] counts (duplicates add up; empty tokens all 0)."""
    buckets = np.asarray(buckets)
    lead = buckets.shape[:-1]
    h = buckets.shape[-1]
    flat = buckets.reshape(-1, h).astype(np.int64, copy=False)
    n = flat.shape[0]
    out = np.zeros((n, bloom_size), dtype)
    live = np.flatnonzero(np.asarray(nonempty).reshape(-1))
    if len(live):
        rows = np.broadcast_to(live[:, None], (len(live), h))
        cols = flat[live]
        # Duplicate buckets within a token are rare: assign, then add the repeats.
        out[rows, cols] = 1
        srt = np.sort(cols, axis=1)
        dup = srt[:, 1:] == srt[:, :-1]
        if dup.any():
            r, k = np.nonzero(dup)
            np.add.at(out, (live[r], srt[r, k + 1]), 1)
    return out.reshape(lead + (bloom_size,))


def window_concat_np(x: np.ndarray, window: int) -> np.ndarray:
    """[..., T, D] -> [..., T, (2w+1) D]: block j of token t holds token t - w + j (zeros outside)."""
    if window == 0:
        return x
    t, d = x.shape[-2], x.shape[-1]
    out = np.zeros(x.shape[:-1] + ((2 * window + 1) * d,), x.dtype)
    for j in range(2 * window + 1):
        off = j - window  # source token = t + off
        lo, hi = max(0, -off), min(t, t - off)
        if lo < hi:
            out[..., lo:hi, j * d:(j + 1) * d] = x[..., lo + off:hi + off, :]
    return out


def minhash_features_np(pieces, num_hashes: int = 64, ngram_size: int = 3, bloom_size: int = 1024,
                        window: int = 1, seed: int = 0, dtype=np.float32) -> np.ndarray:
    """NumPy `MinHashProjection`: int32 [B, T, (P,) C] -> [B, T, (2w+1) m] features, bit-identical.

    Uncached. Also takes `[T, C]` (one sequence; a rank-3 input is always `[B, T, C]`, so pass one
    sequence of pieces `[T, P, C]` as `[1, T, P, C]`).
    """
    _check_args(num_hashes, ngram_size, bloom_size, window)
    fp = minhash_fingerprints_np(pieces, num_hashes, ngram_size, seed)
    buckets, nonempty = minhash_buckets_np(fp, num_hashes, bloom_size, seed)
    counts = bloom_counts_np(buckets, nonempty, bloom_size, dtype)
    return window_concat_np(counts, window)


class MinHashFeaturizer:
    """Host MinHash featurizer with a fingerprint cache per distinct piece.

    The cache maps a piece's codepoints (trailing padding stripped, so the key does not depend on
    the row width) and its position class (first piece, or continuation) to its fingerprint; a
    token's fingerprint is the min over its pieces. The new pieces of a batch are fingerprinted
    together by the vectorised path.

    Args:
      num_hashes, ngram_size, bloom_size, window, seed: as `MinHashProjection`.
      max_cache: maximum number of cached pieces (least recently inserted are dropped).
    """

    def __init__(self, num_hashes: int = 64, ngram_size: int = 3, bloom_size: int = 1024,
                 window: int = 1, seed: int = 0, max_cache: Optional[int] = 1 << 20):
        _check_args(num_hashes, ngram_size, bloom_size, window)
        self.num_hashes, self.ngram_size, self.bloom_size = num_hashes, ngram_size, bloom_size
        self.window, self.seed, self.max_cache = window, seed, max_cache
        self._cache: "collections.OrderedDict[bytes, np.ndarray]" = collections.OrderedDict()
        self.hits = 0
        self.misses = 0

    def get_config(self) -> dict:
        return dict(num_hashes=self.num_hashes, ngram_size=self.ngram_size,
                    bloom_size=self.bloom_size, window=self.window, seed=self.seed,
                    max_cache=self.max_cache)

    def __len__(self) -> int:
        return len(self._cache)

    def _lookup(self, rows: np.ndarray, first: bool) -> np.ndarray:
        """int32 [K, C] pieces (first pieces or continuation pieces) -> [K, H] via the cache."""
        k, c = rows.shape
        out = np.full((k, self.num_hashes), _EMPTY, np.int32)
        live = _live(rows)
        if not len(live):
            return out
        # Distinct rows of the batch, then one cache probe per distinct row.
        uniq_rows, inverse = unique_rows(rows[live])
        lengths = c - np.argmax(uniq_rows[:, ::-1] != 0, axis=1)
        tag = b"F" if first else b"C"
        keys = [tag + r[:n].tobytes() for r, n in zip(uniq_rows, lengths)]
        fps = np.empty((len(keys), self.num_hashes), np.int32)
        missing = []
        cache = self._cache
        for i, key in enumerate(keys):
            hit = cache.get(key)
            if hit is None:
                missing.append(i)
            else:
                fps[i] = hit
        self.hits += len(keys) - len(missing)
        self.misses += len(missing)
        if missing:
            todo = uniq_rows[missing]
            if first:
                new = token_fingerprints_np(todo[:, None, :], self.num_hashes, self.ngram_size,
                                            self.seed)
            else:  # a continuation piece is one element: the piece hashed whole
                w1, w2 = _row_hashes_np(todo, self.seed)
                elems = _mix_np(w1, w2, self.seed)
                new = _keys_of_valid(elems, self.num_hashes, self.seed)
            fps[missing] = new
            for i, fp in zip(missing, new):
                cache[keys[i]] = fp
            if self.max_cache is not None:
                while len(cache) > self.max_cache:
                    cache.popitem(last=False)
        out[live] = fps[inverse.reshape(-1)]
        return out

    def fingerprints(self, pieces) -> np.ndarray:
        """int32 [T, C], [B, T, C] or [B, T, P, C] -> [(B,) T, H], as `minhash_fingerprints_np`."""
        pieces = H.check_codepoints(pieces)
        tokens = _as_token_pieces(pieces)
        fp = self._lookup(tokens[:, 0, :], first=True)
        later = tokens.shape[1] - 1
        if later:
            cont = tokens[:, 1:, :].reshape(-1, tokens.shape[2])
            live = _live(cont)  # only the real continuation pieces are looked up
            if len(live):
                fps = self._lookup(cont[live], first=False)
                owner = live // later
                starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
                toks = owner[starts]
                fp[toks] = np.minimum(fp[toks], np.minimum.reduceat(fps, starts, axis=0))
        return fp.reshape(_token_shape(pieces, self.num_hashes))

    def buckets(self, pieces) -> Tuple[np.ndarray, np.ndarray]:
        """-> (int32 [..., T, H] Bloom buckets, int32 [..., T] non-empty): the sparse features."""
        return minhash_buckets_np(self.fingerprints(pieces), self.num_hashes, self.bloom_size,
                                  self.seed)

    def features(self, pieces, dtype=np.float32) -> np.ndarray:
        """-> [..., T, (2w+1) m] features, equal to `minhash_features_np` and the layer."""
        buckets, nonempty = self.buckets(pieces)
        return window_concat_np(bloom_counts_np(buckets, nonempty, self.bloom_size, dtype),
                                self.window)
