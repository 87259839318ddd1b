"""QuantDense: a Dense layer whose weights and outputs are fake-quantized to 8 bits for QAT.

Follows Jacob et al. (arXiv 1712.05877): symmetric per-tensor int8 weights (zero point 0, as
TFLite's int8 FULLY_CONNECTED requires) and moving-average activation ranges (`FakeQuant`).
Converts to one FULLY_CONNECTED (plus the activation's own op) in an int8 TFLite model.
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch, quantize_weight


@keras.utils.register_keras_serializable(package="prado_tiny")
class QuantDense(QuantizeSwitch, keras.layers.Layer):
    """Dense over the last axis with optional 8-bit fake quantization of weights and outputs.

    Args:
      units: output size.
      activation: a Keras activation name or None; its output gets a range of its own.
      use_bias: add a bias.
      quantize: fake-quantize the kernel and the outputs (QAT); ranges are tracked either way.
      kernel_initializer: Keras initializer of the kernel.
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> dense = QuantDense(16, activation="gelu", quantize=True)
    >>> dense(tf.ones([2, 5, 8]), training=True).shape
    TensorShape([2, 5, 16])
    """

    def __init__(self, units: int, activation=None, use_bias: bool = True, quantize: bool = False,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        if units < 1:
            raise ValueError(f"units must be positive, got {units}")
        self.units = int(units)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self._quantize = bool(quantize)
        self.output_quant = FakeQuant(quantize, name="output_quant")
        self.activation_quant = (FakeQuant(quantize, name="activation_quant")
                                 if activation is not None else None)

    def _quantized_layers(self):
        return [self.output_quant, self.activation_quant]

    def build(self, input_shape):
        d = int(input_shape[-1])
        self.kernel = self.add_weight("kernel", shape=(d, self.units),
                                      initializer=self.kernel_initializer)
        self.bias = (self.add_weight("bias", shape=(self.units,), initializer="zeros")
                     if self.use_bias else None)
        super().build(input_shape)

    def quantized_kernel(self):
        """The kernel as the forward pass uses it (on the int8 grid when quantizing)."""
        return quantize_weight(self.kernel) if self._quantize else self.kernel

    def finish(self, y, training=None):
        """Bias, output range, activation: what follows the matrix product (shared with layers
        that compute the product another way, e.g. sparsely)."""
        if self.bias is not None:
            y = y + self.bias
        y = self.output_quant(y, training=training)
        if self.activation_quant is not None:
            y = self.activation_quant(self.activation(y), training=training)
        return y

    def call(self, x, training=None):
        k = self.quantized_kernel()
        if x.shape.rank == 2:
            y = tf.matmul(x, k)
        else:
            # Rank > 2: the converter maps a reshape-matmul-reshape to FULLY_CONNECTED with
            # keep_num_dims, which int8 supports.
            # Static shapes where known, so an exported model holds no SHAPE ops.
            lead = x.shape[:-1]
            shape = (lead.as_list() if lead.is_fully_defined()
                     else tf.unstack(tf.shape(x)[:-1]))
            y = tf.reshape(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), k), list(shape) + [self.units])
        return self.finish(y, training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units, activation=keras.activations.serialize(self.activation)
                      if self.activation_quant is not None else None,
                      use_bias=self.use_bias, quantize=self._quantize,
                      kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
