"""BloomBottleneck: pNLP-Mixer's linear bottleneck over windowed counting-Bloom-filter features.

Follows Fusco et al., "pNLP-Mixer" (arXiv 2202.04350), section 2.2: a linear layer from the
(2w+1)*m projection features of each token to the hidden size B.

The layer reads the features in two equivalent forms:

* dense: float `[batch, tokens, (2w+1) m]` counts, as `MinHashProjection` computes them in the
  exported model (one int8 FULLY_CONNECTED);
* buckets: the Bloom buckets `[batch, tokens, num_hashes]` and the token mask, as the host
  featurizer caches them for training (H small ints per token instead of (2w+1) m counts). The
  counts are rebuilt for the real tokens only (duplicate buckets add up, exactly as the counting
  Bloom filter counts them) and each token is multiplied once by the m x (2w+1)B kernel; the
  window is applied to the products, so padding and the window copies cost nothing.

Both forms give the same output (to float rounding; a test checks it).
"""
from __future__ import annotations

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.quant_dense import QuantDense


@keras.utils.register_keras_serializable(package="prado_tiny")
class BloomBottleneck(QuantDense):
    """Linear bottleneck over windowed Bloom-filter counts, dense or from cached buckets.

    Args:
      units: B, the hidden size of the mixer.
      bloom_size: m, the Bloom filter size of the projection.
      window: w, tokens concatenated on each side by the projection.
      quantize: fake-quantize kernel and output (QAT).
      **kwargs: passed to `QuantDense` / `keras.layers.Layer`.

    Example:

    >>> layer = BloomBottleneck(units=8, bloom_size=16, window=1)
    >>> buckets = tf.constant([[[3, 3, 7], [0, 1, 2]]])   # [batch 1, tokens 2, hashes 3]
    >>> mask = tf.constant([[1, 0]])                        # the second token is padding
    >>> layer((buckets, mask)).shape
    TensorShape([1, 2, 8])
    """

    def __init__(self, units: int, bloom_size: int = 1024, window: int = 1, quantize: bool = False,
                 **kwargs):
        kwargs.pop("activation", None)
        super().__init__(units, activation=None, quantize=quantize, **kwargs)
        if bloom_size < 1 or window < 0:
            raise ValueError(f"bloom_size must be >= 1 and window >= 0, got {bloom_size}, {window}")
        self.bloom_size = int(bloom_size)
        self.window = int(window)

    @property
    def feature_size(self) -> int:
        return (2 * self.window + 1) * self.bloom_size

    def build(self, input_shape):
        super().build(tf.TensorShape([None, None, self.feature_size]))

    def call(self, inputs, training=None):
        if isinstance(inputs, (tuple, list)):
            return self._call_sparse(inputs[0], inputs[1], training)
        if inputs.shape[-1] != self.feature_size:
            raise ValueError(f"expected {self.feature_size} features per token "
                             f"((2*{self.window}+1)*{self.bloom_size}), got {inputs.shape[-1]}")
        return super().call(inputs, training=training)

    def _call_sparse(self, buckets, mask, training):
        w, m, u = self.window, self.bloom_size, self.units
        buckets = tf.cast(buckets, tf.int32)
        batch, tokens, hashes = tf.shape(buckets)[0], tf.shape(buckets)[1], tf.shape(buckets)[2]
        where = tf.where(tf.cast(mask, tf.bool))  # [N, 2] (b, t) of the real tokens only
        real = tf.gather_nd(buckets, where)  # [N, H]
        n = tf.shape(real)[0]
        # Counts of the real tokens, densified: on CPU a dense [N, m] x [m, (2w+1) U] product is
        # about 8x faster than sparse_dense_matmul over the N*H non-zeros (measured), forward
        # and kernel gradient alike.
        rows = tf.repeat(tf.range(n)[:, None], hashes, axis=1)
        index = tf.reshape(tf.stack([rows, real], axis=-1), [-1, 2])
        counts = tf.scatter_nd(index, tf.ones([n * hashes], self.compute_dtype), tf.stack([n, m]))
        # Kernel rows are ordered [window block j][bucket]; block j of token t reads token
        # t - w + j. One product gives every block for every real token: [N, (2w+1) U].
        k = tf.reshape(self.quantized_kernel(), [2 * w + 1, m, u])
        k = tf.reshape(tf.transpose(k, [1, 0, 2]), [m, (2 * w + 1) * u])
        y = tf.scatter_nd(where, tf.matmul(counts, k), tf.cast(tf.stack([batch, tokens, (2 * w + 1) * u]), tf.int64))
        y = tf.reshape(y, tf.stack([batch, tokens, 2 * w + 1, u]))
        if w:
            y = tf.pad(y, [[0, 0], [w, w], [0, 0], [0, 0]])
            y = tf.add_n([y[:, j:j + tokens, j, :] for j in range(2 * w + 1)])
        else:
            y = y[:, :, 0, :]
        return self.finish(y, training=training)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (tuple, list)) and isinstance(input_shape[0], (tuple, list,
                                                                                  tf.TensorShape)):
            input_shape = input_shape[0]
        return tuple(input_shape[:2]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.pop("activation", None)
        config.update(bloom_size=self.bloom_size, window=self.window)
        return config
