"""QRNN: a bidirectional quasi-recurrent layer with fo-pooling, zoneout and masking, int8-ready.

Follows Bradbury et al., "Quasi-Recurrent Neural Networks" (ICLR 2017, arXiv 1611.01576) as used
by pQRNN (Kaliamoorthi et al., arXiv 2101.08890): per direction a causal convolution of width k
gives z (tanh), f and o (sigmoid); fo-pooling runs c_t = f_t * c_{t-1} + (1 - f_t) * z_t and
h_t = o_t * c_t; zoneout keeps the previous state (f = 1) with probability `zoneout` in training;
the forward and backward outputs are concatenated.

Padding keeps the state: at a padded position the update gate (1 - f) is 0, so the backward
direction starts from zero at the last real token and the forward one is unaffected. The output
at real positions is therefore the same whatever the padded length, which is what lets training
run on batches cut to their longest example and the export run at a fixed `max_seq_len`.

Quantization: every value of the recurrence lies in a range known in advance (z, c, h in
[-1, 1]; f, o and the gates in [0, 1]: c is a convex combination of values in [-1, 1]), so they
are fake-quantized to those fixed ranges, as the reference implementation does, and one range
serves the state at every step. With a static length the recurrence is unrolled in Python, so the
int8 .tflite holds MUL and ADD per step and no loop; with a dynamic length (training batches) it
runs as a `tf.scan` over the same step function.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import QuantizeSwitch
from prado_tiny.layers.quant_dense import QuantDense


# The int8 output ranges TFLite's LOGISTIC and TANH kernels produce (scale 1/256, zero point -128;
# scale 1/128, zero point 0): fake-quantizing to exactly these spares the converter a float
# DEQUANTIZE/QUANTIZE pair to requantize them.
SIGMOID_RANGE = (0.0, 255.0 / 256.0)
TANH_RANGE = (-1.0, 127.0 / 128.0)


def _fixed(x, lo: float, hi: float, quantize: bool):
    """Fake quantization to a fixed 8-bit range (a no-op when not quantizing)."""
    if not quantize:
        return x
    return tf.quantization.fake_quant_with_min_max_args(x, min=lo, max=hi, num_bits=8)


@keras.utils.register_keras_serializable(package="prado_tiny")
class QRNN(QuantizeSwitch, keras.layers.Layer):
    """A (bi)directional QRNN layer over `[batch, tokens, features]` with a token mask.

    Args:
      units: state size per direction (the output has `2 * units` features when bidirectional).
      kernel_width: k, the width of the causal convolution that computes the gates.
      zoneout: probability of keeping the previous state at a position, per unit, in training.
      bidirectional: run a backward direction too and concatenate.
      quantize: fake-quantize weights and activations (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Call args: `x` float `[batch, tokens, features]`, zero at padding; `mask` float
    `[batch, tokens, 1]`, 1 on real tokens. Output: `[batch, tokens, units * directions]`, zero
    at padding, in [-1, 1].

    Example:

    >>> qrnn = QRNN(units=8)
    >>> x, mask = tf.ones([2, 5, 4]), tf.ones([2, 5, 1])
    >>> qrnn(x, mask).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, units: int, kernel_width: int = 3, zoneout: float = 0.0,
                 bidirectional: bool = True, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be positive, got {units}")
        if kernel_width < 1:
            raise ValueError(f"kernel_width must be positive, got {kernel_width}")
        if not 0.0 <= zoneout < 1.0:
            raise ValueError(f"zoneout must be in [0, 1), got {zoneout}")
        self.units = int(units)
        self.kernel_width = int(kernel_width)
        self.zoneout = float(zoneout)
        self.bidirectional = bool(bidirectional)
        self._quantize = bool(quantize)
        q = self._quantize
        self.gates_forward = QuantDense(3 * self.units, quantize=q, name="gates_forward")
        self.gates_backward = (QuantDense(3 * self.units, quantize=q, name="gates_backward")
                               if self.bidirectional else None)

    def _quantized_layers(self):
        return [self.gates_forward, self.gates_backward]

    def build(self, input_shape):
        d = int(input_shape[-1])
        window = tf.TensorShape([None, None, self.kernel_width * d])
        self.gates_forward.build(window)
        if self.gates_backward is not None:
            self.gates_backward.build(window)
        super().build(input_shape)

    def _windows(self, x, forward: bool):
        """[B, T, D] -> [B, T, k * D]: x[t-k+1..t] (forward) or x[t..t+k-1] (backward), zeros
        beyond the ends. A convolution of width k is then one dense layer over the windows."""
        k = self.kernel_width
        if k == 1:
            return x
        t = x.shape[1] if x.shape[1] is not None else tf.shape(x)[1]
        pad = [[0, 0], [k - 1, 0], [0, 0]] if forward else [[0, 0], [0, k - 1], [0, 0]]
        xp = tf.pad(x, pad)
        return tf.concat([xp[:, i:i + t] for i in range(k)], axis=-1)

    def _pool(self, keep, update, forward: bool):
        """fo-pooling: c_t = keep_t * c_{t-1} + update_t from c = 0, in time order or reversed."""
        q = self._quantize

        def step(c, ku):
            return _fixed(ku[0] * c + ku[1], -1.0, 1.0, q)

        t = keep.shape[1]
        if t is not None:  # unrolled: no loop in the converted graph
            ks, us = tf.unstack(keep, axis=1), tf.unstack(update, axis=1)
            order = list(range(t)) if forward else list(range(t - 1, -1, -1))
            out = [None] * t
            c = us[order[0]]  # the first step from c = 0
            out[order[0]] = c
            for i in order[1:]:
                c = step(c, (ks[i], us[i]))
                out[i] = c
            return tf.stack(out, axis=1)
        kt, ut = tf.transpose(keep, [1, 0, 2]), tf.transpose(update, [1, 0, 2])
        if not forward:
            kt, ut = tf.reverse(kt, [0]), tf.reverse(ut, [0])
        states = tf.scan(step, (kt, ut), initializer=tf.zeros_like(ut[0]))
        if not forward:
            states = tf.reverse(states, [0])
        return tf.transpose(states, [1, 0, 2])

    def _direction(self, x, mask, forward: bool, training):
        q = self._quantize
        dense = self.gates_forward if forward else self.gates_backward
        g = dense(self._windows(x, forward), training=training)
        # u is the update gate's pre-activation: 1 - f = sigmoid(u), so f = sigmoid(-u) (int8
        # TFLite has no NEG: the sign lives in the weights).
        z, u, o = tf.split(g, 3, axis=-1)
        z = _fixed(tf.tanh(z), *TANH_RANGE, q)
        o = _fixed(tf.sigmoid(o), *SIGMOID_RANGE, q)
        # Zero at padding: there the state is kept.
        update_gate = _fixed(_fixed(tf.sigmoid(u), *SIGMOID_RANGE, q) * mask, 0.0, 1.0, q)
        if training and self.zoneout > 0.0:
            zone = tf.floor(tf.random.uniform(tf.shape(update_gate)) + self.zoneout)
            update_gate = update_gate * (1.0 - zone)
        keep = _fixed(1.0 - update_gate, 0.0, 1.0, q)
        update = _fixed(update_gate * z, -1.0, 1.0, q)
        c = self._pool(keep, update, forward)
        return _fixed(c * o * mask, -1.0, 1.0, q)

    def call(self, x, mask, training=None):
        h = self._direction(x, mask, True, training)
        if not self.bidirectional:
            return h
        return tf.concat([h, self._direction(x, mask, False, training)], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units * (2 if self.bidirectional else 1),)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, kernel_width=self.kernel_width, zoneout=self.zoneout,
                      bidirectional=self.bidirectional, quantize=self._quantize)
        return config
