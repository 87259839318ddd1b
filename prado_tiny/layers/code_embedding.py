"""CodeEmbedding: an embedding table compressed into compositional codes, learned with the task.

Each vocabulary row is the sum of M codewords, one from each of M codebooks of K vectors
(compositional codes, Shu and Nakayama, ICLR 2018, arXiv 1711.01068). The codes are learned end
to end with the NLU loss, as in task-aware extreme compression (Sathyendra et al., COLING 2020
Industry, arXiv 2012.00124): while they are learned, a row picks its codeword of each codebook
with a straight-through Gumbel-softmax over trainable logits `[V, M, K]` (the forward pass uses the
hard choice, the backward pass the soft one); `freeze()` turns the logits into integer codes
`[V, M]`, after which only the codebooks train. The trainer freezes at the start of QAT
(`quantize = True`), so the QAT epochs fit the codebooks to the final codes.

What the .tflite stores: the codes packed `floor(8 / log2 K)` to a byte (two 4-bit codes per
byte for K = 16) as a uint8 tensor `[V, ceil(M / per_byte)]`, and the codebooks as one int8 tensor
`[M * K, D]`. The lookup is GATHER (codes), CAST, FLOOR_DIV/FLOOR_MOD (unpack), ADD (codebook
offsets), GATHER (codewords) and SUM: builtin integer ops, no float op, no custom op. Table bytes
are `V * ceil(M / per_byte) + M * K * D` against `V * D * 4` for a float32 table.

Input and output follow `PieceEmbedding`: int32 piece ids `[B, T, P]` (0 padding, 1 out of
vocabulary, vocabulary index + 2), a token being the sum of its pieces.
"""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch, quantize_weight
from prado_tiny.layers.minhash_projection import exact_int8


def codes_per_byte(codebook_size: int) -> int:
    """How many codes of `codebook_size` values fit in one byte."""
    return max(1, 8 // max(1, math.ceil(math.log2(codebook_size))))


def code_table_bytes(vocab_size: int, num_codebooks: int, codebook_size: int, dim: int) -> dict:
    """Bytes of the compressed table in an int8 .tflite, and of the tables it replaces."""
    codes = vocab_size * math.ceil(num_codebooks / codes_per_byte(codebook_size))
    books = num_codebooks * codebook_size * dim
    return {"codes": codes, "codebooks": books, "total": codes + books,
            "float32_table": vocab_size * dim * 4, "int8_table": vocab_size * dim}


@keras.utils.register_keras_serializable(package="prado_tiny")
class CodeEmbedding(QuantizeSwitch, keras.layers.Layer):
    """int32 piece ids `[batch, tokens, pieces]` -> `[batch, tokens, dim]` from compositional codes.

    Args:
      vocab_size: rows of the table (the WordPiece vocabulary size + 2).
      dim: embedding size.
      num_codebooks: M, codewords summed per row.
      codebook_size: K, codewords per codebook (2 to 256).
      temperature: Gumbel-softmax temperature while the codes are learned.
      quantize: fake-quantize the codebooks (int8, per tensor) and the summed vectors (QAT);
        switching it on freezes the codes.
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> emb = CodeEmbedding(vocab_size=10, dim=4, num_codebooks=2, codebook_size=4)
    >>> emb(tf.constant([[[2, 3], [0, 0]]])).shape   # one token of two pieces, then padding
    TensorShape([1, 2, 4])
    >>> emb.freeze()
    >>> emb.codes.shape
    TensorShape([10, 2])
    """

    def __init__(self, vocab_size: int, dim: int, num_codebooks: int = 8, codebook_size: int = 16,
                 temperature: float = 1.0, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if vocab_size < 2 or dim < 1:
            raise ValueError(f"vocab_size must be >= 2 and dim >= 1, got {vocab_size}, {dim}")
        if num_codebooks < 1 or not 2 <= codebook_size <= 256:
            raise ValueError(f"num_codebooks must be >= 1 and codebook_size in [2, 256], got "
                             f"{num_codebooks}, {codebook_size}")
        if temperature <= 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.vocab_size = int(vocab_size)
        self.dim = int(dim)
        self.num_codebooks = int(num_codebooks)
        self.codebook_size = int(codebook_size)
        self.temperature = float(temperature)
        self._quantize = bool(quantize)
        # A QAT model uses its frozen codes from the start (they come with its weights).
        self._use_codes = self._quantize
        self.output_quant = FakeQuant(quantize, name="output_quant")

    def _quantized_layers(self):
        return [self.output_quant]

    @QuantizeSwitch.quantize.setter
    def quantize(self, value: bool) -> None:
        QuantizeSwitch.quantize.fset(self, value)
        if value and self.built:
            self.freeze()

    def build(self, input_shape):
        m, k = self.num_codebooks, self.codebook_size
        self.codebooks = self.add_weight("codebooks", shape=(m * k, self.dim),
                                         initializer=keras.initializers.RandomUniform(-0.05, 0.05))
        self.code_logits = self.add_weight("code_logits", shape=(self.vocab_size, m, k),
                                           initializer=keras.initializers.RandomNormal(stddev=1.0))
        self.codes = self.add_weight("codes", shape=(self.vocab_size, m), dtype=tf.int32,
                                     initializer="zeros", trainable=False)
        self.frozen = self.add_weight("frozen", shape=(), dtype=tf.int32, initializer="zeros",
                                      trainable=False)
        super().build(input_shape)

    def freeze(self) -> None:
        """Fixes the codes to the logits' argmax (once: a frozen layer keeps its codes)."""
        if not self.built:
            raise ValueError(f"{self.name}: freeze() needs a built layer (call it once first)")
        if int(self.frozen.numpy()) == 0:
            self.codes.assign(tf.argmax(self.code_logits, axis=-1, output_type=tf.int32))
            self.frozen.assign(1)
        self._use_codes = True

    def initialize(self, codes, codebooks, confidence: float = 6.0) -> None:
        """Warm start from codes `[V, M]` and codebooks `[M, K, D]` (e.g. residual k-means of a
        trained table, `compress.offline.fit_additive_codes`): the logits favour the given
        code by `confidence` (at 6 a Gumbel sample keeps it about 96% of the time), so
        training starts from the offline compression and moves codes only where the task
        loss pays for it. Only before the codes are frozen."""
        import numpy as np
        if not self.built:
            raise ValueError(f"{self.name}: initialize() needs a built layer (call it once first)")
        if int(self.frozen.numpy()):
            raise ValueError(f"{self.name}: the codes are frozen; initialize() comes before QAT")
        m, k, v = self.num_codebooks, self.codebook_size, self.vocab_size
        codes, codebooks = np.asarray(codes), np.asarray(codebooks, np.float32)
        if codes.shape != (v, m) or codebooks.shape != (m, k, self.dim):
            raise ValueError(f"{self.name}: expected codes {(v, m)} and codebooks {(m, k, self.dim)}, "
                             f"got {codes.shape} and {codebooks.shape}")
        if codes.min() < 0 or codes.max() >= k:
            raise ValueError(f"{self.name}: codes must be in [0, {k}), got [{codes.min()}, {codes.max()}]")
        self.code_logits.assign(confidence * np.eye(k, dtype=np.float32)[codes])
        self.codebooks.assign(codebooks.reshape(m * k, self.dim))

    def packed_codes(self):
        """The codes as the .tflite stores them: uint8 `[V, ceil(M / per_byte)]`, code j of a
        byte at digit j in base K."""
        per, k, m = codes_per_byte(self.codebook_size), self.codebook_size, self.num_codebooks
        cols = math.ceil(m / per)
        codes = tf.pad(self.codes, [[0, 0], [0, cols * per - m]])
        codes = tf.reshape(codes, [self.vocab_size, cols, per])
        digits = tf.constant([k ** j for j in range(per)], tf.int32)
        return tf.cast(tf.reduce_sum(codes * digits, axis=-1), tf.uint8)

    def _unpacked(self, ids):
        """Codes of `ids` `[..., M]` int32 through the packed table (the exported lookup)."""
        per, k, m = codes_per_byte(self.codebook_size), self.codebook_size, self.num_codebooks
        packed = tf.cast(tf.gather(self.packed_codes(), ids), tf.int32)  # [..., cols]
        digits = [tf.math.floormod(tf.math.floordiv(packed, k ** j), k) if j else
                  tf.math.floormod(packed, k) for j in range(per)]
        codes = tf.stack(digits, axis=-1)  # [..., cols, per]
        codes = tf.reshape(codes, tf.concat([tf.shape(ids), [-1]], 0))
        return codes[..., :m]

    def call(self, ids, training=None):
        ids = tf.cast(ids, tf.int32)
        m, k = self.num_codebooks, self.codebook_size
        books = quantize_weight(self.codebooks) if self._quantize else self.codebooks
        if self._use_codes:
            offsets = tf.range(m, dtype=tf.int32) * k
            rows = self._unpacked(ids) + offsets  # [B, T, P, M] rows of the stacked codebooks
            vectors = tf.reduce_sum(tf.gather(books, rows), axis=-2)  # [B, T, P, D]
        else:
            # Once per distinct id of the batch, not per position: most of [B, T, P] is padding
            # and repeats, and the per-position version trained MTOP at 91 examples/s against
            # the table's 1,800. One Gumbel sample per id per step.
            uniq, where = tf.unique(tf.reshape(ids, [-1]))
            logits = tf.gather(self.code_logits, uniq)  # [U, M, K]
            if training:
                u = tf.random.uniform(tf.shape(logits), 1e-6, 1.0 - 1e-6)
                soft = tf.nn.softmax((logits - tf.math.log(-tf.math.log(u))) / self.temperature)
            else:
                soft = tf.nn.softmax(logits)
            hard = tf.one_hot(tf.argmax(soft, axis=-1), k, dtype=soft.dtype)
            choice = hard + soft - tf.stop_gradient(soft)  # straight through
            rows = tf.einsum("umk,mkd->ud", choice, tf.reshape(books, [m, k, self.dim]))
            vectors = tf.reshape(tf.gather(rows, where), tf.concat([tf.shape(ids), [self.dim]], 0))
        # Padding pieces (id 0) add nothing (exact_int8: a CAST in the .tflite, no float op).
        present = exact_int8(tf.minimum(ids, 1))[..., None]
        return self.output_quant(tf.reduce_sum(vectors * present, axis=-2), training=training)

    def table_bytes(self) -> dict:
        """`code_table_bytes` for this layer."""
        return code_table_bytes(self.vocab_size, self.num_codebooks, self.codebook_size, self.dim)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, dim=self.dim, num_codebooks=self.num_codebooks,
                      codebook_size=self.codebook_size, temperature=self.temperature,
                      quantize=self._quantize)
        return config
