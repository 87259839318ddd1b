"""MergedAttentionDecoderBlock: one decoder layer of pQRNN-MAtt, int8-ready, with a one-step mode.

Follows Kandoor, "Tiny Neural Models for Seq2Seq" (arXiv 2108.03340): the decoder layer merges two
attentions and sums them, as in the merged attention of Zhang, Titov and Sennrich (EMNLP 2019,
arXiv 1908.11365): a uniform causal average over the previous decoder positions (the average
attention network of Zhang, Xiong and Su, arXiv 1805.00631, without its gate) plus multi-head
cross-attention to the encoder outputs. Then an output projection, residual + LayerNorm, a
feed-forward network, residual + LayerNorm (post-LN):

    avg_t  = mean(x_0 .. x_t) W_avg                           (uniform causal average)
    ctx_t  = MHA(x_t W_q, keys, values, encoder_mask)         (cross-attention)
    h_t    = LN(x_t + (avg_t + ctx_t) W_o)
    y_t    = LN(h_t + FFN(h_t))

Two call modes compute the same function: `block(x, encoder_out, encoder_mask)` over a whole
target sequence (teacher forcing), and `block.step(...)` one position at a time with the average
carried as an explicit state, the cross-attention keys and values computed once per utterance by
`block.encoder_kv` (so an exported one-step decoder takes them as inputs).

int8: like `TransformerBlock`, every activation has a fake-quant range (QAT), padded encoder
positions are pushed down by `mask_penalty` instead of -inf and their weights multiplied by the
mask, and the softmax output uses the range of TFLite's int8 SOFTMAX (scale 1/256, zero point
-128). The state carried between steps is the running *mean*, not the running sum: see `step`.
With `int8_internals` QAT also rounds what the converter rounds inside a LayerNorm
(`QuantLayerNorm`) and the raw attention scores before their scaling, so that the int8 step
model computes what the Keras model trained with.
"""
from __future__ import annotations

import math

import numpy as np
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch
from prado_tiny.layers.qrnn import SIGMOID_RANGE, _fixed
from prado_tiny.layers.quant_dense import QuantDense
from prado_tiny.layers.quant_layer_norm import QuantLayerNorm

# The fixed int8 range of the averaging weight 1/(t+1) (scale 1/255, zero point -128: 1 and 0
# are exact).
WEIGHT_RANGE = (0.0, 1.0)


@keras.utils.register_keras_serializable(package="prado_tiny")
class MergedAttentionDecoderBlock(QuantizeSwitch, keras.layers.Layer):
    """One pQRNN-MAtt decoder layer: uniform causal average + cross-attention, post-LN, FFN.

    Args:
      num_heads: cross-attention heads (must divide the hidden size).
      ff_dim: feed-forward hidden size.
      dropout: dropout on the merged-attention projection and the feed-forward output in
        training.
      mask_penalty: subtracted from the scores of padded encoder positions before the softmax.
      layer_norm_epsilon: LayerNormalization epsilon.
      activation: feed-forward activation (a Keras activation name). "relu" (default): the
        activation of the Transformer and merged-attention papers, fused into the int8
        FULLY_CONNECTED by the converter (no op of its own, no lookup-table approximation),
        and its output range [0, max] spends all 256 int8 levels on the values it can take.
      max_steps: decoding steps the one-step mode supports with uniform weights (the length of
        its table of weights 1/(t+1)); the full-sequence call accepts targets up to this length.
      quantize: fake-quantize weights and activations (QAT).
      int8_internals: also fake-quantize the int8 tensors the converter adds inside the two
        LayerNorms (`QuantLayerNorm`) and the attention scores before their scaling. False:
        the layout of models trained before this option (Keras LayerNorm).
      **kwargs: passed to `keras.layers.Layer`.

    Call args (full sequence, teacher forcing): `x` float `[batch, T, hidden]` decoder states;
    `encoder_out` float `[batch, S, encoder_dim]`; `encoder_mask` float `[batch, S, 1]`, 1 on
    real encoder positions; `training`. Output `[batch, T, hidden]`; position t depends only on
    x at positions 0..t. Decoder padding needs no mask: it follows the real positions and
    cannot reach them (mask the loss).

    One step (decoding, export): `encoder_kv(encoder_out, encoder_mask)` once per utterance,
    `initial_state(batch)`, then `step(x_t, state, keys, values, encoder_mask)` per position.

    Example:

    >>> block = MergedAttentionDecoderBlock(num_heads=2, ff_dim=16)
    >>> x, enc, enc_mask = tf.ones([2, 5, 8]), tf.ones([2, 7, 6]), tf.ones([2, 7, 1])
    >>> block(x, enc, enc_mask).shape
    TensorShape([2, 5, 8])
    >>> keys, values = block.encoder_kv(enc, enc_mask)
    >>> y, (mean, count) = block.step(x[:, :1], block.initial_state(2), keys, values, enc_mask)
    >>> y.shape, mean.shape, count.numpy().ravel().tolist()
    (TensorShape([2, 1, 8]), TensorShape([2, 1, 8]), [1, 1])
    """

    def __init__(self, num_heads: int, ff_dim: int, dropout: float = 0.0,
                 mask_penalty: float = 16.0, layer_norm_epsilon: float = 1e-5,
                 activation: str = "relu", max_steps: int = 128, quantize: bool = False,
                 int8_internals: bool = False, **kwargs):
        super().__init__(**kwargs)
        if num_heads < 1 or ff_dim < 1:
            raise ValueError(f"num_heads and ff_dim must be positive, got {num_heads}, {ff_dim}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        if max_steps < 1:
            raise ValueError(f"max_steps must be positive, got {max_steps}")
        self.num_heads = int(num_heads)
        self.ff_dim = int(ff_dim)
        self.dropout = float(dropout)
        self.mask_penalty = float(mask_penalty)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.activation = keras.activations.serialize(keras.activations.get(activation))
        self.max_steps = int(max_steps)
        self._quantize = bool(quantize)
        self.int8_internals = bool(int8_internals)
        # 1/(t+1) for t = 0..max_steps-1: the weight of position t in the running mean.
        self._step_weights = tf.constant(1.0 / np.arange(1, self.max_steps + 1), tf.float32)

    def _quantized_layers(self):
        if not self.built:
            return []
        norms = [self.norm1, self.norm2] if self.int8_internals else []
        return [self.average_value, self.query, self.key, self.value, self.out, self.ff_in,
                self.ff_out, *norms, *self.quants]

    def build(self, input_shape):
        hidden = int(input_shape[-1])
        if hidden % self.num_heads:
            raise ValueError(f"hidden size {hidden} is not divisible by num_heads={self.num_heads}")
        self.hidden = hidden
        q, eps = self._quantize, self.layer_norm_epsilon
        if self.int8_internals:
            self.norm1 = QuantLayerNorm(eps, quantize=q, name="attention_norm")
            self.norm2 = QuantLayerNorm(eps, quantize=q, name="ff_norm")
        else:
            self.norm1 = keras.layers.LayerNormalization(epsilon=eps, name="attention_norm")
            self.norm2 = keras.layers.LayerNormalization(epsilon=eps, name="ff_norm")
        self.norm1.build(input_shape)
        self.norm2.build(input_shape)
        # No bias: the mean of a bias is the bias, which the output projection's bias absorbs.
        self.average_value = QuantDense(hidden, use_bias=False, quantize=q, name="average_value")
        self.query = QuantDense(hidden, quantize=q, name="query")
        # Built on the first `encoder_kv` call: the encoder width may differ from the decoder's.
        self.key = QuantDense(hidden, quantize=q, name="key")
        self.value = QuantDense(hidden, quantize=q, name="value")
        self.out = QuantDense(hidden, quantize=q, name="merged_out")
        self.ff_in = QuantDense(self.ff_dim, activation=self.activation, quantize=q, name="ff_in")
        self.ff_out = QuantDense(hidden, quantize=q, name="ff_out")
        for layer in (self.average_value, self.query, self.out, self.ff_in):
            layer.build(input_shape)
        self.ff_out.build(tf.TensorShape(list(input_shape[:-1]) + [self.ff_dim]))
        names = ("keys_quant", "values_quant", "average_quant", "diff_quant", "update_quant",
                 "scores_quant", "masked_quant", "context_quant", "merged_quant", "res1_quant",
                 "norm1_quant", "res2_quant", "norm2_quant")
        if self.int8_internals:
            # A QuantLayerNorm rounds its own output; the raw scores get the range of the int8
            # BATCH_MATMUL output that precedes the scaling. (The legacy order above is kept:
            # checkpoints name these by position too.)
            names = tuple(n for n in names if n not in ("norm1_quant", "norm2_quant"))
            names += ("raw_scores_quant",)
        self.quants = [FakeQuant(q, name=n) for n in names]
        for n, layer in zip(names, self.quants):
            setattr(self, n, layer)
        self.drop = keras.layers.Dropout(self.dropout)
        super().build(input_shape)

    # -- state and cached encoder keys/values ------------------------------------------------

    def initial_state(self, batch_size: int):
        """The state before the first step: (running mean `float32[batch, 1, hidden]` of zeros,
        step count `int32[batch, 1, 1]` of zeros)."""
        if not self.built:
            raise ValueError("initial_state needs a built layer (call it once or build it)")
        return (tf.zeros([batch_size, 1, self.hidden]), tf.zeros([batch_size, 1, 1], tf.int32))

    def encoder_kv(self, encoder_out, encoder_mask=None, training=None):
        """Cross-attention keys and values `[batch, S, hidden]` each, computed once per utterance.

        Keys are zero at padded positions when `encoder_mask` is given, so a padded position's
        score is exactly 0 - `mask_penalty` whatever the encoder wrote there. Both end in a
        fake-quant range of their own (`keys_quant`, `values_quant`) that `step` applies to its
        inputs too: an int8 encoder .tflite and an int8 one-step decoder .tflite then share the
        scale of the keys. (For values the converter keeps the value projection's own output
        range, the first of two fake-quants in a row; the host requantizes them to
        `values_quant`'s, the same double rounding as here.)
        """
        keys = self.key(encoder_out, training=training)
        if encoder_mask is not None:
            keys = keys * encoder_mask
        values = self.value(encoder_out, training=training)
        return (self.keys_quant(keys, training=training),
                self.values_quant(values, training=training))

    # -- shared maths ------------------------------------------------------------------------

    def _dims(self, x):
        static = x.shape[:2].is_fully_defined()
        return (x.shape[0], x.shape[1]) if static else (tf.shape(x)[0], tf.shape(x)[1])

    def _heads(self, x, b, t):
        """[B, T, heads*d] -> [B, heads, T, d]."""
        d = self.hidden // self.num_heads
        return tf.transpose(tf.reshape(x, [b, t, self.num_heads, d]), [0, 2, 1, 3])

    def _cross_attention(self, x, keys, values, encoder_mask, training):
        b, t = self._dims(x)
        s = keys.shape[1] if keys.shape[1] is not None else tf.shape(keys)[1]
        q = self._heads(self.query(x, training=training), b, t)
        k, v = self._heads(keys, b, s), self._heads(values, b, s)
        scale = 1.0 / math.sqrt(self.hidden // self.num_heads)
        scores = tf.matmul(q, k, transpose_b=True)
        if self.int8_internals:
            scores = self.raw_scores_quant(scores, training=training)
        scores = scores * scale
        scores = self.scores_quant(scores, training=training)
        key_mask = tf.reshape(encoder_mask, [b, 1, 1, s])
        scores = self.masked_quant(scores + (key_mask - 1.0) * self.mask_penalty, training=training)
        weights = _fixed(tf.nn.softmax(scores, axis=-1), *SIGMOID_RANGE, self._quantize) * key_mask
        context = self.context_quant(tf.matmul(weights, v), training=training)
        return tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [b, t, self.hidden])

    def _merge(self, x, mean_prev, weight, v, keys, values, encoder_mask, training):
        """The block from the previous mean onwards; returns (output, mean including x).

        mean_t = mean_{t-1} + w_t (v_t - mean_{t-1}) with w_t = 1/(t+1): written this way the
        update stays a convex combination of the old mean and v_t even when w_t is rounded to
        the int8 grid, so the mean never drifts outside v's range (`(1 - w) m + w v` with w and
        1 - w rounded separately can sum to more than 1 and grow)."""
        mean_prev = self.average_quant(mean_prev, training=training)
        diff = self.diff_quant(v - mean_prev, training=training)
        update = self.update_quant(weight * diff, training=training)
        mean = self.average_quant(mean_prev + update, training=training)
        context = self._cross_attention(x, keys, values, encoder_mask, training)
        merged = self.merged_quant(mean + context, training=training)
        y = self.out(merged, training=training)
        h = self._norm(1, self.res1_quant(x + self.drop(y, training=training), training=training),
                       training)
        f = self.ff_out(self.ff_in(h, training=training), training=training)
        out = self._norm(2, self.res2_quant(h + self.drop(f, training=training), training=training),
                         training)
        return out, mean

    def _norm(self, i, x, training):
        norm = self.norm1 if i == 1 else self.norm2
        if self.int8_internals:
            return norm(x, training=training)
        out_quant = self.norm1_quant if i == 1 else self.norm2_quant
        return out_quant(norm(x), training=training)

    def _weight(self, count):
        """w = 1/(count+1) from the table (int32 `count`; GATHER in an int8 .tflite: there is
        no int8 reciprocal or DIV). Counts from `max_steps` on reuse the last weight."""
        idx = tf.minimum(count, self.max_steps - 1)
        return _fixed(tf.gather(self._step_weights, idx), *WEIGHT_RANGE, self._quantize)

    # -- the two modes -----------------------------------------------------------------------

    def call(self, x, encoder_out, encoder_mask, training=None):
        b, t = self._dims(x)
        if isinstance(t, int) and t > self.max_steps:
            raise ValueError(f"{t} target positions exceed max_steps={self.max_steps}")
        keys, values = self.encoder_kv(encoder_out, encoder_mask, training=training)
        v = self.average_value(x, training=training)
        # The exact mean of the positions before t (teacher forcing: all of them are known),
        # then the same update as `step` from it: both modes run the same ops on the same values.
        # Quantized, step's previous mean also carries the rounding of the earlier steps: the
        # modes agree at t = 0 and were within 5 output LSB over 12 steps (random weights).
        positions = tf.range(t)
        before = tf.cast(tf.maximum(positions, 1), v.dtype)[None, :, None]
        mean_prev = tf.cumsum(v, axis=1, exclusive=True) / before
        weight = self._weight(positions)[None, :, None]
        out, _ = self._merge(x, mean_prev, weight, v, keys, values, encoder_mask, training)
        return out

    def step(self, x_t, state, encoder_keys, encoder_values, encoder_mask, training=None):
        """One decoding step: `(y_t [batch, 1, hidden], (mean, count))`.

        Args:
          x_t: float `[batch, 1, hidden]`, the decoder state at position t = count.
          state: `(mean, count)` from `initial_state` or the previous step: mean float
            `[batch, 1, hidden]`, the running mean of the averaged values over positions
            0..t-1; count int32 `[batch, 1, 1]`, t.
          encoder_keys, encoder_values: from `encoder_kv`, `[batch, S, hidden]`.
          encoder_mask: float `[batch, S, 1]`.

        The state is the running mean, not the running sum: the sum grows with t, so one fixed
        int8 range for every step would either clip long sequences or waste most levels on short
        ones, whereas the mean lies in the range of the averaged values at every step
        (`average_quant`: the same scale for the state input and output, so the int8 output is
        fed back as it is). With int8 rounding simulated over 64 steps (normal values with a
        per-sequence offset, one range per tensor), the mean state was 0.5-1.4 LSB from the
        exact mean for t < 32 and 2.1 LSB at t = 63; a summed state with a range fitted to the
        same data was 8.4 LSB off at t = 0, 2.0 at t = 15, 1.0 at t = 63. In the converted
        test model the state stays within 1 LSB of the Keras step over 8 steps. The count is
        int32 (ADD, MINIMUM, GATHER: builtin integer ops), so the host only feeds it back.
        """
        x_t, encoder_mask = tf.convert_to_tensor(x_t), tf.convert_to_tensor(encoder_mask)
        mean, count = tf.convert_to_tensor(state[0]), tf.cast(state[1], tf.int32)
        keys = self.keys_quant(encoder_keys, training=False)
        values = self.values_quant(encoder_values, training=False)
        v = self.average_value(x_t, training=training)
        weight = self._weight(count)
        out, new_mean = self._merge(x_t, mean, weight, v, keys, values, encoder_mask, training)
        return out, (new_mean, count + 1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, ff_dim=self.ff_dim, dropout=self.dropout,
                      mask_penalty=self.mask_penalty, layer_norm_epsilon=self.layer_norm_epsilon,
                      activation=self.activation, max_steps=self.max_steps,
                      quantize=self._quantize, int8_internals=self.int8_internals)
        return config
