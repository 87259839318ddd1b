"""TransformerBlock: a pre-LayerNorm transformer encoder layer with masked attention, int8-ready.

Follows Vaswani et al., "Attention Is All You Need" (arXiv 1706.03762) in the pre-LayerNorm
arrangement of Xiong et al. (arXiv 2002.04745), which trains from scratch without a long warm-up:
x + MHA(LN(x)), then x + FFN(LN(x)) with GELU. It is the transformer baseline of pQRNN's paper
(Kaliamoorthi et al., arXiv 2101.08890), sized to pQRNN's parameter count by its config.

int8: every activation has a fake-quant range (QAT); padded keys are pushed down by
`mask_penalty` before the softmax instead of -inf (an int8 range cannot hold -inf) and their
weights multiplied by the mask; the softmax output uses the range of TFLite's int8 SOFTMAX
(scale 1/256, zero point -128). Padded rows enter LayerNorm as a +-1 pattern (as in `MixerBlock`)
so that the int8 RSQRT range fits the real rows. Padded positions stay zero, and a batch cut to
its longest example gives the same outputs as the padded one.
"""
from __future__ import annotations

import math

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch
from prado_tiny.layers.qrnn import SIGMOID_RANGE, _fixed
from prado_tiny.layers.quant_dense import QuantDense


@keras.utils.register_keras_serializable(package="prado_tiny")
class TransformerBlock(QuantizeSwitch, keras.layers.Layer):
    """One pre-LN transformer encoder layer over `[batch, tokens, hidden]` with a token mask.

    Args:
      num_heads: attention heads (must divide the hidden size).
      ff_dim: feed-forward hidden size.
      dropout: dropout on the attention and feed-forward outputs in training.
      mask_penalty: subtracted from the scores of padded keys before the softmax.
      layer_norm_epsilon: LayerNormalization epsilon.
      quantize: fake-quantize weights and activations (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Call args: `x` float `[batch, tokens, hidden]`, zero at padding; `mask` float
    `[batch, tokens, 1]`, 1 on real tokens.

    Example:

    >>> block = TransformerBlock(num_heads=2, ff_dim=16)
    >>> block(tf.ones([2, 5, 8]), tf.ones([2, 5, 1])).shape
    TensorShape([2, 5, 8])
    """

    def __init__(self, num_heads: int, ff_dim: int, dropout: float = 0.0,
                 mask_penalty: float = 16.0, layer_norm_epsilon: float = 1e-5,
                 quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or ff_dim < 1:
            raise ValueError(f"num_heads and ff_dim must be positive, got {num_heads}, {ff_dim}")
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.mask_penalty = float(mask_penalty)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self._quantize = bool(quantize)

    def _quantized_layers(self):
        if not self.built:
            return []
        return [self.qkv, self.out, self.ff_in, self.ff_out, *self.quants]

    def build(self, input_shape):
        hidden = int(input_shape[-1])
        if hidden % self.num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by num_heads={self.num_heads}")
        q, eps = self._quantize, self.layer_norm_epsilon
        self.norm1 = keras.layers.LayerNormalization(epsilon=eps, name="attention_norm")
        self.norm2 = keras.layers.LayerNormalization(epsilon=eps, name="ff_norm")
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        self.qkv = QuantDense(3 * hidden, quantize=q, name="qkv")
        self.out = QuantDense(hidden, quantize=q, name="attention_out")
        self.ff_in = QuantDense(self.ff_dim, activation="gelu", quantize=q, name="ff_in")
        self.ff_out = QuantDense(hidden, quantize=q, name="ff_out")
        self.qkv.build(input_shape)
        self.out.build(input_shape)
        self.ff_in.build(input_shape)
        self.ff_out.build(tf.TensorShape(list(input_shape[:-1]) + [self.ff_dim]))
        names = ("norm1_quant", "norm2_quant", "scores_quant", "masked_quant", "context_quant",
                 "res1_quant", "res2_quant")
        self.quants = [FakeQuant(q, name=n) for n in names]
        for n, layer in zip(names, self.quants):
            setattr(self, n, layer)
        self.drop = keras.layers.Dropout(self.dropout)
        self.pad_pattern = tf.constant([1.0 if i % 2 == 0 else -1.0 for i in range(hidden)])
        super().build(input_shape)

    def _heads(self, x, t, b):
        """[B, T, H*d] -> [B, H, T, d]."""
        d = x.shape[-1] // self.num_heads
        return tf.transpose(tf.reshape(x, [b, t, self.num_heads, d]), [0, 2, 1, 3])

    def _attention(self, y, mask, training):
        static = y.shape[:2].is_fully_defined()
        b, t = (y.shape[0], y.shape[1]) if static else (tf.shape(y)[0], tf.shape(y)[1])
        hidden = y.shape[-1]
        q, k, v = tf.split(self.qkv(y, training=training), 3, axis=-1)
        q, k, v = self._heads(q, t, b), self._heads(k, t, b), self._heads(v, t, b)
        scores = tf.matmul(q, k, transpose_b=True) * (1.0 / math.sqrt(hidden // self.num_heads))
        scores = self.scores_quant(scores, training=training)
        key_mask = tf.reshape(mask, [b, 1, 1, t])
        scores = self.masked_quant(scores + (key_mask - 1.0) * self.mask_penalty, training=training)
        weights = _fixed(tf.nn.softmax(scores, axis=-1), *SIGMOID_RANGE, self._quantize) * key_mask
        context = self.context_quant(tf.matmul(weights, v), training=training)
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [b, t, hidden])
        return self.out(context, training=training)

    def call(self, x, mask, training=None):
        fill = lambda z: z + (1.0 - mask) * self.pad_pattern  # noqa: E731  (see MixerBlock)
        y = self.norm1_quant(self.norm1(fill(x)), training=training) * mask
        y = self._attention(y, mask, training)
        x = self.res1_quant(x + self.drop(y, training=training) * mask, training=training)
        z = self.norm2_quant(self.norm2(fill(x)), training=training)
        z = self.ff_out(self.ff_in(z, training=training), training=training)
        return self.res2_quant(x + self.drop(z, training=training) * mask, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, ff_dim=self.ff_dim, dropout=self.dropout,
                      mask_penalty=self.mask_penalty, layer_norm_epsilon=self.layer_norm_epsilon,
                      quantize=self._quantize)
        return config
