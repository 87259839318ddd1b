"""MixerBlock: one pNLP-Mixer layer (token mixing across positions, channel mixing across features).

Follows Tolstikhin et al., "MLP-Mixer" (arXiv 2105.01601) as adapted to text by Fusco et al.,
"pNLP-Mixer" (arXiv 2202.04350), section 2.3: pre-LayerNorm, a token-mixing MLP applied to each
feature across the sequence positions, a channel-mixing MLP applied to each position across the
features, GELU, residual connections.

Padding: the block keeps padded positions at zero. Its input is zero there, the normalised
values are masked before token mixing (LayerNorm of a padded row is not zero and would
otherwise leak into real positions) and both residual branches are masked. Padded rows enter
LayerNorm as a +-1 pattern, not as zeros, for the int8 model's sake (`_pad_fill`).

Variable length: the token-mixing weights are sized for `max_seq_len` positions. A batch whose
longest example has T < max_seq_len tokens uses their first T rows and columns, which is exact:
the missing positions are padding, zero on input and masked on output. Training on batches
trimmed to their longest example therefore costs what the real text costs, and the exported
model (fixed at max_seq_len) computes the same function.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch, quantize_weight
from prado_tiny.layers.quant_dense import QuantDense


@keras.utils.register_keras_serializable(package="prado_tiny")
class MixerBlock(QuantizeSwitch, keras.layers.Layer):
    """One MLP-Mixer block over `[batch, tokens, hidden]` with a token mask.

    Args:
      max_seq_len: positions the token-mixing MLP is sized for (64 in the paper).
      token_mlp_dim: hidden size of the token-mixing MLP.
      channel_mlp_dim: hidden size of the channel-mixing MLP.
      dropout: dropout rate on both MLP outputs in training.
      layer_norm_epsilon: LayerNormalization epsilon.
      quantize: fake-quantize weights and activations (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Call args: `x` float `[batch, tokens <= max_seq_len, hidden]`, zero at padding; `mask` float
    `[batch, tokens, 1]`, 1 on real tokens.

    Example:

    >>> block = MixerBlock(max_seq_len=8, token_mlp_dim=8, channel_mlp_dim=16)
    >>> x, mask = tf.ones([2, 5, 4]), tf.ones([2, 5, 1])
    >>> block(x, mask).shape
    TensorShape([2, 5, 4])
    """

    def __init__(self, max_seq_len: int, token_mlp_dim: int, channel_mlp_dim: int,
                 dropout: float = 0.0, layer_norm_epsilon: float = 1e-5, quantize: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.max_seq_len = int(max_seq_len)
        self.token_mlp_dim = int(token_mlp_dim)
        self.channel_mlp_dim = int(channel_mlp_dim)
        self.dropout = float(dropout)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self._quantize = bool(quantize)

    def _quantized_layers(self):
        if not self.built:
            return []
        return [self.token_hidden_quant, self.token_act_quant,
                self.token_out_quant, self.channel_in, self.channel_out, self.norm1_quant,
                self.norm2_quant, self.res1_quant, self.res2_quant]

    def build(self, input_shape):
        hidden = int(input_shape[-1])
        q = self._quantize
        eps = self.layer_norm_epsilon
        self.norm1 = keras.layers.LayerNormalization(epsilon=eps, name="token_norm")
        self.norm2 = keras.layers.LayerNormalization(epsilon=eps, name="channel_norm")
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        # Token-mixing weights as plain variables: they are sliced to the batch's length.
        self.token_w1 = self.add_weight("token_w1", shape=(self.max_seq_len, self.token_mlp_dim),
                                        initializer="glorot_uniform")
        self.token_b1 = self.add_weight("token_b1", shape=(self.token_mlp_dim,), initializer="zeros")
        self.token_w2 = self.add_weight("token_w2", shape=(self.token_mlp_dim, self.max_seq_len),
                                        initializer="glorot_uniform")
        self.token_b2 = self.add_weight("token_b2", shape=(self.max_seq_len,), initializer="zeros")
        self.channel_in = QuantDense(self.channel_mlp_dim, activation="gelu", quantize=q,
                                     name="channel_in")
        self.channel_out = QuantDense(hidden, quantize=q, name="channel_out")
        self.channel_in.build(input_shape)
        self.channel_out.build(tf.TensorShape(list(input_shape[:-1]) + [self.channel_mlp_dim]))
        names = ("norm1_quant", "norm2_quant", "token_hidden_quant",
                 "token_act_quant", "token_out_quant", "res1_quant", "res2_quant")
        for name in names:
            setattr(self, name, FakeQuant(q, name=name))
        self.drop = keras.layers.Dropout(self.dropout)
        self.pad_pattern = tf.constant([1.0 if i % 2 == 0 else -1.0 for i in range(hidden)])
        super().build(input_shape)

    def _token_mix(self, y, training):
        """[B, T, D] -> [B, T, D], mixing across positions (T <= max_seq_len)."""
        t = y.shape[1]
        w1, b1, w2, b2 = self.token_w1, self.token_b1, self.token_w2, self.token_b2
        if self._quantize:
            w1, w2 = quantize_weight(w1), quantize_weight(w2)
        if t is None or t != self.max_seq_len:
            n = tf.shape(y)[1]
            w1, w2, b2 = w1[:n], w2[:, :n], b2[:n]
        yt = tf.transpose(y, [0, 2, 1])  # [B, D, T]
        h = self.token_hidden_quant(_matmul_last(yt, w1) + b1, training=training)
        h = self.token_act_quant(tf.nn.gelu(h), training=training)
        out = self.token_out_quant(_matmul_last(h, w2) + b2, training=training)
        return tf.transpose(out, [0, 2, 1])

    def _pad_fill(self, x, mask):
        """Padded rows (zero) get a +-1 pattern before LayerNorm; real rows are unchanged.

        LayerNorm of a zero row divides by sqrt(epsilon): 1/sqrt(1e-5) = 316. In an int8 model
        that one value would stretch the range of the inverse standard deviation (RSQRT) over
        0..316, leaving about 1.2 per step for the real rows, whose values are near 1: the
        normalisation of every real token would be off by up to 50%. With unit-variance padded
        rows the range fits the real rows. The padded outputs are masked either way.
        """
        return x + (1.0 - mask) * self.pad_pattern

    def call(self, x, mask, training=None):
        y = self.norm1_quant(self.norm1(self._pad_fill(x, mask)), training=training) * mask
        y = self._token_mix(y, training)
        x = self.res1_quant(x + self.drop(y, training=training) * mask, training=training)
        z = self.norm2_quant(self.norm2(self._pad_fill(x, mask)), training=training)
        z = self.channel_out(self.channel_in(z, training=training), training=training)
        return self.res2_quant(x + self.drop(z, training=training) * mask, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(max_seq_len=self.max_seq_len, token_mlp_dim=self.token_mlp_dim,
                      channel_mlp_dim=self.channel_mlp_dim, dropout=self.dropout,
                      layer_norm_epsilon=self.layer_norm_epsilon, quantize=self._quantize)
        return config


def _matmul_last(x, w):
    """[..., K] x [K, N] -> [..., N] with static shapes where known (FULLY_CONNECTED in TFLite)."""
    lead = x.shape[:-1]
    shape = lead.as_list() if lead.is_fully_defined() else tf.unstack(tf.shape(x)[:-1])
    y = tf.matmul(tf.reshape(x, [-1, x.shape[-1] if x.shape[-1] is not None else tf.shape(x)[-1]]), w)
    return tf.reshape(y, list(shape) + [w.shape[-1] if w.shape[-1] is not None else tf.shape(w)[-1]])
