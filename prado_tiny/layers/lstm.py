"""BiLSTM: a masked bidirectional LSTM (coupled input-forget gate), int8-ready and unrolled for export.

Follows Hochreiter and Schmidhuber (1997) in the coupled input-forget gate (CIFG) variant of
Greff et al., "LSTM: A Search Space Odyssey" (arXiv 1503.04069), which performs on par with the
full LSTM: per direction z, u, o = x W + h U + b;
c_t = (1 - u_t) c_{t-1} + u_t tanh(z_t); h_t = sigmoid(o_t) tanh(c_t), with u = sigmoid(u).
It is the BiLSTM baseline of pQRNN's paper (Kaliamoorthi et al., arXiv 2101.08890).

Why the coupled gate: c stays a convex combination of values in [-1, 1], so every value of the
recurrence has a range known in advance and is fake-quantized to it (QAT), as in `QRNN`. A plain
LSTM's cell state is unbounded, and post-training calibration gave its always-padded positions
near-zero ranges whose int8 scale ratios the stock XNNPACK delegate refuses ("failed to create
XNNPACK runtime"; seen on the first export). Only the pre-activation sums get moving-average
ranges, one range shared by every step.

Padding keeps the state: the update gate is 0 at padded positions, so the backward direction
starts from c = 0 (and so h = 0) at the last real token whatever the padded length. With a static
length the recurrence is a Python loop (no WHILE in the .tflite); with a dynamic length (training
batches) a `tf.scan` of the same step.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch
from prado_tiny.layers.qrnn import SIGMOID_RANGE, TANH_RANGE, _fixed
from prado_tiny.layers.quant_dense import QuantDense


@keras.utils.register_keras_serializable(package="prado_tiny")
class BiLSTM(QuantizeSwitch, keras.layers.Layer):
    """A bidirectional CIFG LSTM over `[batch, tokens, features]` with a token mask.

    Args:
      units: state size per direction (the output has `2 * units` features).
      quantize: fake-quantize weights and activations (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Call args: `x` float `[batch, tokens, features]`, zero at padding; `mask` float
    `[batch, tokens, 1]`, 1 on real tokens. Output: `[batch, tokens, 2 * units]` in [-1, 1],
    zero at padding.

    Example:

    >>> lstm = BiLSTM(units=8)
    >>> lstm(tf.ones([2, 5, 4]), tf.ones([2, 5, 1])).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, units: int, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be positive, got {units}")
        self.units = int(units)
        self._quantize = q = bool(quantize)
        self.inputs_forward = QuantDense(3 * self.units, quantize=q, name="inputs_forward")
        self.inputs_backward = QuantDense(3 * self.units, quantize=q, name="inputs_backward")
        self.recurrent_forward = QuantDense(3 * self.units, use_bias=False, quantize=q,
                                            kernel_initializer="orthogonal",
                                            name="recurrent_forward")
        self.recurrent_backward = QuantDense(3 * self.units, use_bias=False, quantize=q,
                                             kernel_initializer="orthogonal",
                                             name="recurrent_backward")
        self.sum_forward = FakeQuant(q, name="sum_forward")
        self.sum_backward = FakeQuant(q, name="sum_backward")

    def _quantized_layers(self):
        return [self.inputs_forward, self.inputs_backward, self.recurrent_forward,
                self.recurrent_backward, self.sum_forward, self.sum_backward]

    def build(self, input_shape):
        d = int(input_shape[-1])
        for dense in (self.inputs_forward, self.inputs_backward):
            dense.build(tf.TensorShape([None, None, d]))
        for dense in (self.recurrent_forward, self.recurrent_backward):
            dense.build(tf.TensorShape([None, self.units]))
        super().build(input_shape)

    def _direction(self, x, mask, forward: bool, training):
        q = self._quantize
        name = "forward" if forward else "backward"
        inputs, recurrent, sum_quant = (getattr(self, f"{k}_{name}")
                                        for k in ("inputs", "recurrent", "sum"))
        xw = inputs(x, training=training)

        def step(state, xm):
            h, c = state
            g, m = xm
            g = sum_quant(g + recurrent(h, training=training), training=training)
            z, u, o = tf.split(g, 3, axis=-1)
            z = _fixed(tf.tanh(z), *TANH_RANGE, q)
            update = _fixed(_fixed(tf.sigmoid(u), *SIGMOID_RANGE, q) * m, 0.0, 1.0, q)
            keep = _fixed(1.0 - update, 0.0, 1.0, q)
            c = _fixed(keep * c + _fixed(update * z, -1.0, 1.0, q), -1.0, 1.0, q)
            h = _fixed(_fixed(tf.sigmoid(o), *SIGMOID_RANGE, q) * _fixed(tf.tanh(c), *TANH_RANGE, q),
                       -1.0, 1.0, q)
            return h, c

        t = x.shape[1]
        zero = tf.zeros_like(xw[:, 0, :self.units])
        if t is not None:  # unrolled: no loop in the converted graph
            gs, ms = tf.unstack(xw, axis=1), tf.unstack(mask, axis=1)
            state, out = (zero, zero), [None] * t
            for k in (range(t) if forward else range(t - 1, -1, -1)):
                state = step(state, (gs[k], ms[k]))
                out[k] = state[0]
            hs = tf.stack(out, axis=1)
        else:
            gt, mt = tf.transpose(xw, [1, 0, 2]), tf.transpose(mask, [1, 0, 2])
            if not forward:
                gt, mt = tf.reverse(gt, [0]), tf.reverse(mt, [0])
            hs, _ = tf.scan(step, (gt, mt), initializer=(zero, zero))
            if not forward:
                hs = tf.reverse(hs, [0])
            hs = tf.transpose(hs, [1, 0, 2])
        return _fixed(hs * mask, -1.0, 1.0, q)

    def call(self, x, mask, training=None):
        return tf.concat([self._direction(x, mask, True, training),
                          self._direction(x, mask, False, training)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (2 * self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, quantize=self._quantize)
        return config
