"""PieceEmbedding: a token's vector as the sum of its WordPiece pieces' embeddings.

The embedding input of the toolkit's baselines (the BiLSTM and transformer of pQRNN's paper,
Kaliamoorthi et al., arXiv 2101.08890, section 4) and of the embedding-compression model: a
learned table over the WordPiece vocabulary, looked up with GATHER and summed over each token's
pieces with SUM, both builtin int8 ops in TFLite. Summing keeps one vector per token, so the slot
tags stay aligned with tokens as in the projection models.

Ids follow `TextEncoder.encode_piece_ids`: 0 is padding (contributes nothing), 1 a piece outside
the vocabulary, vocabulary index + 2 otherwise.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch, quantize_weight
from prado_tiny.layers.minhash_projection import exact_int8


@keras.utils.register_keras_serializable(package="prado_tiny")
class PieceEmbedding(QuantizeSwitch, keras.layers.Layer):
    """int32 piece ids `[batch, tokens, pieces]` -> `[batch, tokens, dim]`.

    Args:
      vocab_size: rows of the table (the WordPiece vocabulary size + 2).
      dim: embedding size.
      embeddings_initializer: Keras initializer of the table.
      quantize: fake-quantize the table (int8, per tensor) and the summed vectors (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> emb = PieceEmbedding(vocab_size=10, dim=4)
    >>> emb(tf.constant([[[2, 3], [0, 0]]])).shape   # one token of two pieces, then padding
    TensorShape([1, 2, 4])
    """

    def __init__(self, vocab_size: int, dim: int, embeddings_initializer="uniform",
                 quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if vocab_size < 2 or dim < 1:
            raise ValueError(f"vocab_size must be >= 2 and dim >= 1, got {vocab_size}, {dim}")
        self.vocab_size = int(vocab_size)
        self.dim = int(dim)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self._quantize = bool(quantize)
        self.output_quant = FakeQuant(quantize, name="output_quant")

    def _quantized_layers(self):
        return [self.output_quant]

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", shape=(self.vocab_size, self.dim),
                                          initializer=self.embeddings_initializer)
        super().build(input_shape)

    def call(self, ids, training=None):
        ids = tf.cast(ids, tf.int32)
        table = quantize_weight(self.embeddings) if self._quantize else self.embeddings
        vectors = tf.gather(table, ids)  # [B, T, P, D]
        # Padding pieces (id 0) add nothing: row 0 is never trained and is masked out here.
        # exact_int8: 0/1 on the int8 grid, a CAST(int32 -> int8) in the .tflite, no float.
        present = exact_int8(tf.minimum(ids, 1))[..., None]
        return self.output_quant(tf.reduce_sum(vectors * present, axis=-2), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, dim=self.dim, quantize=self._quantize,
                      embeddings_initializer=keras.initializers.serialize(self.embeddings_initializer))
        return config
