"""QuantLayerNorm: layer normalization whose QAT rounds every tensor the int8 TFLite rounds.

Follows Ba, Kiros and Hinton, "Layer Normalization" (arXiv 1607.06450), with quantization-aware
training as in Jacob et al. (arXiv 1712.05877). TFLite has no int8 LAYER_NORM kernel: the
converter lowers `keras.layers.LayerNormalization` to MEAN, SQUARED_DIFFERENCE, MEAN, ADD (eps),
RSQRT, MUL (gamma), MUL (x), MUL (mean), SUB (beta) and ADD, and requantizes each result to int8
with a range calibrated after training. A Keras model that fake-quantizes only the output trains
against a LayerNorm the device never runs: in a trained pQRNN-MAtt decoder step (MTOP Thai, int8
.tflite against Keras tensor by tensor) the two LayerNorms' outputs were 3-5% (relative RMS)
from the Keras ones. This layer computes the same decomposition with a `FakeQuant` on each of
those tensors, so QAT sees the device's rounding and the converter takes the trained ranges
instead of calibrated ones: alone, 0.45% instead of 2.4% (`tests/test_quant_layer_norm.py`).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch, quantize_weight

# The int8 tensors of the lowered LayerNorm, in graph order.
_STAGES = ("mean", "squared_difference", "variance", "variance_eps", "rsqrt", "scale",
           "scaled_input", "scaled_mean", "shift", "output")


@keras.utils.register_keras_serializable(package="prado_tiny")
class QuantLayerNorm(QuantizeSwitch, keras.layers.Layer):
    """Layer normalization over the last axis with each int8 stage of its TFLite lowering
    fake-quantized for QAT.

    `y = x * (gamma * rsqrt(var + eps)) + (beta - mean * gamma * rsqrt(var + eps))`, the form
    the converter emits. With `quantize=False` it equals `keras.layers.LayerNormalization`
    (same `gamma`/`beta` weights) to float rounding; ranges are tracked in training either way.

    Args:
      epsilon: added to the variance.
      quantize: fake-quantize the stages (QAT) and the per-feature `gamma` and `beta`.
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> norm = QuantLayerNorm(quantize=True)
    >>> y = norm(tf.random.normal([2, 3, 8]), training=True)
    >>> y.shape
    TensorShape([2, 3, 8])
    """

    def __init__(self, epsilon: float = 1e-5, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        self.epsilon = float(epsilon)
        self._quantize = bool(quantize)
        self.stages = {n: FakeQuant(quantize, name=f"{n}_quant") for n in _STAGES}

    def _quantized_layers(self):
        return list(self.stages.values())

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.gamma = self.add_weight("gamma", shape=(d,), initializer="ones")
        self.beta = self.add_weight("beta", shape=(d,), initializer="zeros")
        super().build(input_shape)

    def call(self, x, training=None):
        q = self.stages

        def fq(name, t):
            return q[name](t, training=training)

        gamma, beta = self.gamma, self.beta
        if self._quantize:
            gamma, beta = quantize_weight(gamma), quantize_weight(beta)
        mean = fq("mean", tf.reduce_mean(x, axis=-1, keepdims=True))
        sq = fq("squared_difference", tf.math.squared_difference(x, mean))
        var = fq("variance", tf.reduce_mean(sq, axis=-1, keepdims=True))
        v = fq("variance_eps", var + self.epsilon)
        # A row whose variance rounds to int8 zero (a constant or all-zero row, e.g. padding)
        # would give rsqrt(0) = inf, and one inf range makes every later range NaN. Its
        # normalized values are zero anyway: r = 0 there gives the float answer for a constant
        # row (beta), and the converter keeps the guard as builtin int8 GREATER and SELECT_V2.
        nonzero = v > 0.0
        r = fq("rsqrt", tf.where(nonzero, tf.math.rsqrt(tf.where(nonzero, v, 1.0)), 0.0))
        scale = fq("scale", gamma * r)
        shift = fq("shift", beta - fq("scaled_mean", mean * scale))
        return fq("output", fq("scaled_input", x * scale) + shift)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(epsilon=self.epsilon, quantize=self._quantize)
        return config
