"""AttentionPooling: masked attention pooling of token states into one vector per example.

As in the pQRNN and pNLP-Mixer papers (Kaliamoorthi et al., arXiv 2101.08890; Fusco et al.,
arXiv 2202.04350) for the sequence-level (intent) head: a learned score per token, a softmax over
the real tokens, and the score-weighted sum of the token states.

Masking stays int8-friendly: instead of adding -inf (which no int8 range can hold), padded scores
are pushed down by `mask_penalty`, enough for softmax to give them a negligible weight
(exp(-mask_penalty)), and the weights are multiplied by the mask once more.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch
from prado_tiny.layers.quant_dense import QuantDense


@keras.utils.register_keras_serializable(package="prado_tiny")
class AttentionPooling(QuantizeSwitch, keras.layers.Layer):
    """`[batch, tokens, hidden]` + mask `[batch, tokens, 1]` -> `[batch, hidden]`.

    Args:
      mask_penalty: subtracted from the scores of padded tokens before the softmax.
      quantize: fake-quantize weights and activations (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> pool = AttentionPooling()
    >>> x = tf.constant([[[1.0, 2.0], [9.0, 9.0]]])
    >>> mask = tf.constant([[[1.0], [0.0]]])        # the second token is padding
    >>> pool(x, mask).numpy().round(3)
    array([[1., 2.]], dtype=float32)
    """

    def __init__(self, mask_penalty: float = 16.0, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.mask_penalty = float(mask_penalty)
        self._quantize = bool(quantize)
        self.score = QuantDense(1, quantize=quantize, name="score")
        self.masked_quant = FakeQuant(quantize, name="masked_score_quant")
        self.pooled_quant = FakeQuant(quantize, name="pooled_quant")

    def _quantized_layers(self):
        return [self.score, self.masked_quant, self.pooled_quant]

    def call(self, x, mask, training=None):
        s = self.score(x, training=training)  # [B, T, 1]
        s = self.masked_quant(s + (mask - 1.0) * self.mask_penalty, training=training)
        # Softmax over the token axis (last axis in TFLite's kernel).
        w = tf.nn.softmax(tf.squeeze(s, -1), axis=-1)[..., None] * mask
        return self.pooled_quant(tf.reduce_sum(w * x, axis=1), training=training)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(mask_penalty=self.mask_penalty, quantize=self._quantize)
        return config
