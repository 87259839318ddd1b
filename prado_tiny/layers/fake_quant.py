"""FakeQuant: 8-bit fake quantization of activations with moving-average ranges, for QAT.

Follows Jacob et al., "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference" (CVPR 2018, arXiv 1712.05877): during training the range of
each activation is an exponential moving average of the batch minima and maxima, and the forward
pass rounds to the 8-bit grid of that range (straight-through gradient). The TFLite converter
reads the ranges from the `FakeQuantWithMinMaxVars` nodes, so the int8 model uses the ranges the
network was trained with.

TF-native fake quant is used instead of tfmot because tfmot rejects LayerNormalization and the
custom layers here (`../shared/STACK.md`).

The layer tracks its range whenever it is called in training, also with `quantize=False`, so a
run that turns quantization on for its last epochs (`set_quantize`) starts from warm ranges.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras


@keras.utils.register_keras_serializable(package="prado_tiny")
class FakeQuant(keras.layers.Layer):
    """Fake-quantizes its input to 8 bits over a moving-average [min, max] range.

    Args:
      quantize: round to the int8 grid in the forward pass (QAT). False: identity, but the
        range is still tracked in training.
      decay: weight of the old range in the moving average (0.99: about 100 batches of memory;
        the first batch sets the range).
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> fq = FakeQuant(quantize=True)
    >>> y = fq(tf.random.normal([4, 8]), training=True)   # range set from this batch
    >>> float(fq.range_min) <= 0.0 <= float(fq.range_max)
    True
    """

    def __init__(self, quantize: bool = False, decay: float = 0.99, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.quantize = bool(quantize)
        self.decay = float(decay)

    def build(self, input_shape):
        # ON_READ + MEAN, like BatchNormalization's moving statistics: each replica keeps its
        # own copy under a distribution strategy and reads average them.
        kw = dict(shape=(), trainable=False, synchronization=tf.VariableSynchronization.ON_READ,
                  aggregation=tf.VariableAggregation.MEAN)
        self.range_min = self.add_weight("range_min", initializer="zeros", **kw)
        self.range_max = self.add_weight("range_max", initializer="zeros", **kw)
        self.seen = self.add_weight("seen", initializer="zeros", **kw)
        super().build(input_shape)

    def call(self, x, training=None):
        if training:
            bmin = tf.stop_gradient(tf.reduce_min(x))
            bmax = tf.stop_gradient(tf.reduce_max(x))
            first = tf.equal(self.seen, 0.0)
            d = self.decay
            self.range_min.assign(tf.where(first, bmin, d * self.range_min + (1.0 - d) * bmin))
            self.range_max.assign(tf.where(first, bmax, d * self.range_max + (1.0 - d) * bmax))
            self.seen.assign(1.0)
        if not self.quantize:
            return x
        # The int8 grid must hold 0 exactly (padding, ReLU-like zeros), so the range spans it
        # on both sides (an all-negative range would otherwise be shifted up to end at 0 by
        # the zero-point nudging, clipping its lowest values).
        lo = tf.minimum(self.range_min, 0.0)
        hi = tf.maximum(tf.maximum(self.range_max, 0.0), lo + 1e-3)
        return tf.quantization.fake_quant_with_min_max_vars(x, lo, hi, num_bits=8)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(quantize=self.quantize, decay=self.decay)
        return config


class QuantizeSwitch:
    """Mixin for layers that hold quantized sub-layers: a `quantize` property that also switches
    the sub-layers `_quantized_layers()` returns (after `build`, when they exist)."""

    _quantize = False

    def _quantized_layers(self):
        return []

    @property
    def quantize(self) -> bool:
        return self._quantize

    @quantize.setter
    def quantize(self, value: bool) -> None:
        self._quantize = bool(value)
        for layer in self._quantized_layers():
            if layer is not None:
                layer.quantize = self._quantize


def quantize_weight(w):
    """Symmetric per-tensor 8-bit fake quantization of a weight (narrow range, zero point 0, as
    TFLite's int8 kernels require); straight-through gradient."""
    a = tf.stop_gradient(tf.maximum(tf.reduce_max(tf.abs(w)), 1e-8))
    return tf.quantization.fake_quant_with_min_max_vars(w, -a, a, num_bits=8, narrow_range=True)


def set_quantize(model, quantize: bool = True) -> int:
    """Turns fake quantization on or off in every layer of `model` that has a `quantize`
    attribute (FakeQuant and the quantized layers); returns how many were switched. A compiled
    training step must be traced again afterwards."""
    n = 0
    for layer in model.submodules:
        if isinstance(layer, keras.layers.Layer) and hasattr(layer, "quantize") and layer is not model:
            layer.quantize = bool(quantize)
            n += 1
    return n
