"""TernaryProjection: pQRNN's non-trainable ternary hashing projection.

Follows Kaliamoorthi et al., "Distilling Large Language Models into Tiny and Effective Students
using pQRNN" (arXiv 2101.08890) and PRADO (EMNLP 2019): each token is hashed and the hash bits
are read two at a time into F features in {-1, 0, 1} with P(0) = 1/2 and P(+1) = P(-1) = 1/4 (the
pair of bits (b0, b1) gives b0 - b1). Unlike the reference (a 64-bit Murmur hash in a custom C++
op) every step here is a TFLite builtin integer op, so the exported model runs on any stock
interpreter.

The hash (constants and overflow argument: `prado_tiny/layers/hashing.py`): the token's
codepoints -> row hash modulo two primes below 2^15 -> W = ceil(F / 12) words, word b a keyed
4-round Feistel permutation of the row hash with its own keys -> the three low bytes of each
30-bit word -> four ternary values per byte (a GATHER from a constant [256, 4] table: one lookup
per four features instead of per-feature bit arithmetic). Feature f is word f // 12, byte
(f mod 12) // 4, bit pair f mod 4.

Padding: a token that is all padding produces all-zero features.

The same computation exists twice, bit for bit: the Keras layer `TernaryProjection` (int32
codepoints in, builtin integer ops) and `ternary_features_np` (NumPy, host-side caching).

Output dtype: float32 holding -1/0/1, pinned to the int8 grid with scale 1 and zero point 0 (see
`minhash_projection.exact_int8`); after `prado_tiny.export.inspect.fold_exact_int8_casts` the
int8 model produces them with one CAST(int32 -> int8) and feeds them to the next quantized layer.
With `int_output=True` the layer returns int32.
"""
from __future__ import annotations

import collections
from typing import Optional

import numpy as np

from prado_tiny.layers import hashing as H
from prado_tiny.layers.hashing import NP, TF

MAX_FEATURES = 4096 * 4


def _check_args(num_features):
    if not 1 <= num_features <= MAX_FEATURES:
        raise ValueError(f"num_features must be in [1, {MAX_FEATURES}], got {num_features}")


def _values(ops, tokens, num_features: int, seed: int, static_chars: int):
    """int32 [N, C] token rows -> int32 [N, F] in {-1, 0, 1} (all 0 for padding tokens)."""
    words, nonempty = H.ternary_words(ops, tokens, num_features, seed, static_chars)
    words = ops.mul(words, ops.expand(nonempty, -1))  # padding -> word 0 -> features 0
    table = ops.const(H.ternary_byte_table())
    vals = ops.gather(table, H.ternary_bytes(ops, words))  # [N, 3W, 4]
    total = -(-num_features // H.TERNARY_PER_WORD) * H.TERNARY_PER_WORD
    flat = ops.reshape(vals, [ops.dim(words, 0), total])
    return flat if total == num_features else H.take(ops, flat, 1, 0, num_features)


# ---------------------------------------------------------------------------------------------
# TensorFlow.

def ternary_features_tf(codepoints, num_features: int = 512, seed: int = 0,
                        int_output: bool = False):
    """What `TernaryProjection` computes: int32 [B, T, C] -> [B, T, F]."""
    import tensorflow as tf
    from prado_tiny.layers.minhash_projection import exact_int8
    x = tf.cast(codepoints, tf.int32)
    if x.shape.rank != 3 or any(d is None for d in x.shape[1:]):
        raise ValueError(f"expected [batch, tokens, chars] with static tokens and chars, got "
                         f"{codepoints.shape}")
    _, t, c = x.shape.as_list()
    batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
    # Trailing padding tokens and characters are cut first (exact): the hashing below costs in
    # proportion to the real text.
    trimmed = tf.squeeze(H.trim_padding_tf(tf.expand_dims(x, 2)), axis=2)
    t_used = tf.shape(trimmed)[1]
    rows = tf.reshape(trimmed, tf.stack([-1, tf.shape(trimmed)[2]]))
    vals = _values(TF, rows, num_features, seed, c)  # [B * t_used, F]
    # Back to [B * T, F]: SCATTER_ND of whole rows (static output shape for the next layer).
    grid = tf.reshape(tf.range(batch * t, dtype=tf.int32), tf.stack([batch, t]))
    dest = tf.reshape(tf.slice(grid, [0, 0], tf.stack([-1, t_used])), [-1, 1])
    out = tf.scatter_nd(dest, vals, tf.stack([batch * t, num_features]))
    out = tf.reshape(out, tf.stack([batch, t, num_features]) if not isinstance(batch, int)
                     else [batch, t, num_features])
    return out if int_output else exact_int8(out)


def _keras():
    import tf_keras
    return tf_keras


def _make_layer_class():
    keras = _keras()

    @keras.utils.register_keras_serializable(package="prado_tiny")
    class TernaryProjection(keras.layers.Layer):
        """pQRNN's ternary projection over int32 codepoints, in TFLite builtin integer ops.

        Follows Kaliamoorthi et al., "Distilling Large Language Models into Tiny and Effective
        Students using pQRNN" (arXiv 2101.08890), section 2: every token becomes F features in
        {-1, 0, 1}, P(0) = 1/2, P(+1) = P(-1) = 1/4, from its hash. Non-trainable. Bit-identical
        to `ternary_features_np`.

        Args:
          num_features: F, features per token (pQRNN uses up to 4096).
          seed: selects the hash functions (any int; same seed, same features everywhere).
          int_output: return int32 features instead of float32.
          **kwargs: passed to `keras.layers.Layer`.

        Input: int32 `[batch, tokens, chars]` (tokens lower-cased by the front end), 0 is padding.
        Output: `[batch, tokens, num_features]`, float32 in {-1, 0, 1} pinned to the int8 grid.

        Example:

        >>> layer = TernaryProjection(num_features=1024)
        >>> codepoints = tf.constant([[[104, 105, 0], [0, 0, 0]]])  # "hi", padding
        >>> layer(codepoints).shape
        TensorShape([1, 2, 1024])
        """

        def __init__(self, num_features: int = 512, seed: int = 0, int_output: bool = False,
                     **kwargs):
            kwargs.setdefault("trainable", False)
            super().__init__(**kwargs)
            _check_args(num_features)
            self.num_features = int(num_features)
            self.seed = int(seed)
            self.int_output = bool(int_output)

        def build(self, input_shape):
            shape = list(input_shape)
            if len(shape) != 3 or any(d is None for d in shape[1:]):
                raise ValueError(f"expected [batch, tokens, chars] with static tokens and chars, "
                                 f"got {input_shape}")
            super().build(input_shape)

        def call(self, codepoints):
            return ternary_features_tf(codepoints, self.num_features, self.seed, self.int_output)

        def compute_output_shape(self, input_shape):
            return (input_shape[0], input_shape[1], self.num_features)

        def get_config(self):
            config = super().get_config()
            config.update(num_features=self.num_features, seed=self.seed,
                          int_output=self.int_output)
            return config

    return TernaryProjection


def __getattr__(name):
    # The layer class needs TensorFlow; the NumPy host path must not import it.
    if name == "TernaryProjection":
        cls = _make_layer_class()
        cls.__qualname__ = name
        globals()[name] = cls
        return cls
    raise AttributeError(name)


# ---------------------------------------------------------------------------------------------
# NumPy.

def ternary_features_np(codepoints, num_features: int = 512, seed: int = 0, dtype=np.float32,
                        chunk: int = 8192) -> np.ndarray:
    """NumPy `TernaryProjection`: int32 [..., C] token rows -> [..., F], bit-identical.

    Only non-empty tokens are hashed (padding rows stay 0), in chunks of `chunk` tokens.
    """
    _check_args(num_features)
    x = H.check_codepoints(codepoints)
    if x.ndim < 1:
        raise ValueError("codepoints must be at least [chars]")
    c = x.shape[-1]
    rows = x.reshape(-1, c)
    out = np.zeros((rows.shape[0], num_features), dtype)
    live = np.flatnonzero((rows > 0).any(axis=1))
    for start in range(0, len(live), chunk):
        ids = live[start:start + chunk]
        part = rows[ids]
        used = np.flatnonzero((part > 0).any(axis=0))
        part = part[:, :int(used[-1]) + 1]
        out[ids] = _values(NP, part, num_features, seed, c)
    return out.reshape(x.shape[:-1] + (num_features,))


class TernaryFeaturizer:
    """Host ternary featurizer with a cache per distinct token (codepoints, padding stripped).

    Args:
      num_features, seed: as `TernaryProjection`.
      max_cache: maximum number of cached tokens (least recently inserted are dropped).
    """

    def __init__(self, num_features: int = 512, seed: int = 0, max_cache: Optional[int] = 200_000):
        _check_args(num_features)
        self.num_features, self.seed, self.max_cache = num_features, seed, max_cache
        self._cache: "collections.OrderedDict[bytes, np.ndarray]" = collections.OrderedDict()

    def get_config(self) -> dict:
        return dict(num_features=self.num_features, seed=self.seed, max_cache=self.max_cache)

    def features(self, codepoints, dtype=np.float32) -> np.ndarray:
        """int32 [..., C] -> [..., F], equal to `ternary_features_np`."""
        x = H.check_codepoints(codepoints)
        c = x.shape[-1]
        rows = x.reshape(-1, c)
        out = np.zeros((rows.shape[0], self.num_features), np.int8)
        live = np.flatnonzero((rows > 0).any(axis=1))
        if len(live):
            from prado_tiny.layers.minhash_projection import unique_rows
            uniq_rows, inverse = unique_rows(rows[live])
            lengths = c - np.argmax(uniq_rows[:, ::-1] != 0, axis=1)
            keys = [r[:n].tobytes() for r, n in zip(uniq_rows, lengths)]
            vals = np.empty((len(keys), self.num_features), np.int8)
            missing = []
            for i, k in enumerate(keys):
                hit = self._cache.get(k)
                if hit is None:
                    missing.append(i)
                else:
                    vals[i] = hit
            if missing:
                new = ternary_features_np(uniq_rows[missing], self.num_features, self.seed, np.int8)
                vals[missing] = new
                for i, v in zip(missing, new):
                    self._cache[keys[i]] = v
                while self.max_cache is not None and len(self._cache) > self.max_cache:
                    self._cache.popitem(last=False)
            out[live] = vals[inverse.reshape(-1)]
        return out.astype(dtype, copy=False).reshape(x.shape[:-1] + (self.num_features,))
