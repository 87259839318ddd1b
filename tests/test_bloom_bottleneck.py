"""Tests for prado_tiny.layers.bloom_bottleneck: the bucket form equals the dense form."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.bloom_bottleneck import BloomBottleneck
from prado_tiny.layers.minhash_projection import bloom_features_tf

M = 16  # bloom size
H = 5  # hashes
U = 6  # units


def inputs(seed, batch=3, tokens=5):
    """Buckets with duplicates within tokens and garbage (in-range) buckets at padded tokens."""
    rng = np.random.default_rng(seed)
    buckets = rng.integers(0, M, (batch, tokens, H)).astype(np.int32)
    buckets[:, :, 1] = buckets[:, :, 0]  # every token has a duplicate bucket
    buckets[0, 0, :] = 3  # one token hashes all H times into one bucket
    lengths = rng.integers(1, tokens + 1, batch)
    lengths[0] = tokens  # one example without padding
    lengths[-1] = 2
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.int32)
    return buckets, mask


def make(window, seed=0, quantize=False):
    layer = BloomBottleneck(U, bloom_size=M, window=window, quantize=quantize)
    layer.build(None)
    rng = np.random.default_rng(seed + 50)
    layer.kernel.assign(rng.normal(0, 1, layer.kernel.shape).astype(np.float32))
    layer.bias.assign(rng.normal(0, 1, [U]).astype(np.float32))
    return layer


def reference(buckets, mask, kernel, bias, window):
    """The bottleneck by hand: block j of token t reads the buckets of token t - w + j."""
    b, t, _ = buckets.shape
    k = kernel.reshape(2 * window + 1, M, U)
    out = np.tile(bias, (b, t, 1)).astype(np.float64)
    for i in range(b):
        for pos in range(t):
            for j in range(2 * window + 1):
                src = pos - window + j
                if 0 <= src < t and mask[i, src]:
                    for bucket in buckets[i, src]:
                        out[i, pos] += k[j, bucket]
    return out


@pytest.mark.parametrize("window", [0, 1, 2])
def test_bucket_form_equals_dense_form(window):
    layer = make(window)
    buckets, mask = inputs(1)
    dense = bloom_features_tf(tf.constant(buckets), tf.constant(mask), M, window)
    assert dense.shape[-1] == layer.feature_size == (2 * window + 1) * M
    from_dense = layer(dense).numpy()
    from_buckets = layer((tf.constant(buckets), tf.constant(mask))).numpy()
    np.testing.assert_allclose(from_buckets, from_dense, rtol=1e-5, atol=1e-5)
    ref = reference(buckets, mask, layer.kernel.numpy(), layer.bias.numpy(), window)
    np.testing.assert_allclose(from_buckets, ref, rtol=1e-5, atol=1e-4)


def test_duplicate_buckets_add_up():
    layer = make(0)
    buckets = np.full((1, 1, H), 7, np.int32)
    out = layer((tf.constant(buckets), tf.constant([[1]]))).numpy()
    np.testing.assert_allclose(out[0, 0], H * layer.kernel.numpy()[7] + layer.bias.numpy(),
                               rtol=1e-5)


def test_padded_tokens_are_ignored():
    layer = make(1)
    buckets, mask = inputs(2)
    other = buckets.copy()
    other[mask == 0] = (other[mask == 0] + 5) % M  # different garbage at the padded tokens
    a = layer((tf.constant(buckets), tf.constant(mask))).numpy()
    b = layer((tf.constant(other), tf.constant(mask))).numpy()
    np.testing.assert_array_equal(a, b)
    # A fully padded example gives the bias everywhere.
    c = layer((tf.constant(buckets[:1]), tf.zeros_like(mask[:1]))).numpy()
    np.testing.assert_allclose(c, np.broadcast_to(layer.bias.numpy(), c.shape), rtol=1e-6)


@pytest.mark.parametrize("window", [0, 1])
def test_kernel_gradients_equal(window):
    layer = make(window, seed=3)
    buckets, mask = inputs(4)
    dense = bloom_features_tf(tf.constant(buckets), tf.constant(mask), M, window)
    weights = tf.constant(np.random.default_rng(5).normal(0, 1, (3, 5, U)).astype(np.float32))

    def grads(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True) * weights)
        return [g.numpy() for g in tape.gradient(loss, [layer.kernel, layer.bias])]

    gk_dense, gb_dense = grads(dense)
    gk_sparse, gb_sparse = grads((tf.constant(buckets), tf.constant(mask)))
    assert np.abs(gk_dense).max() > 0
    np.testing.assert_allclose(gk_sparse, gk_dense, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(gb_sparse, gb_dense, rtol=1e-5, atol=1e-5)


def test_bucket_form_in_tf_function_with_dynamic_shapes():
    layer = make(1)
    run = tf.function(lambda b, m: layer((b, m)), input_signature=[
        tf.TensorSpec([None, None, H], tf.int32), tf.TensorSpec([None, None], tf.int32)])
    for seed, tokens in ((6, 5), (7, 3)):
        buckets, mask = inputs(seed, tokens=tokens)
        expect = layer(bloom_features_tf(tf.constant(buckets), tf.constant(mask), M, 1)).numpy()
        np.testing.assert_allclose(run(buckets, mask).numpy(), expect, rtol=1e-5, atol=1e-5)


def test_quantized_forms_agree():
    a, b = make(1, quantize=True), make(1, quantize=True)
    buckets, mask = inputs(8)
    dense = bloom_features_tf(tf.constant(buckets), tf.constant(mask), M, 1)
    ya = a((tf.constant(buckets), tf.constant(mask)), training=True).numpy()
    yb = b(dense, training=True).numpy()
    step = (float(a.output_quant.range_max) - min(float(a.output_quant.range_min), 0.0)) / 255
    # To float rounding, which may move a value on the boundary of two grid steps by one step.
    assert np.abs(ya - yb).max() <= step * 1.01
    assert np.mean(np.isclose(ya, yb, atol=1e-4)) > 0.95


def test_wrong_feature_size_raises():
    layer = make(1)
    with pytest.raises(ValueError, match="features per token"):
        layer(tf.zeros([1, 4, M]))
    with pytest.raises(ValueError):
        BloomBottleneck(4, bloom_size=0)
    with pytest.raises(ValueError):
        BloomBottleneck(4, bloom_size=8, window=-1)


def test_get_config_round_trip():
    layer = make(1)
    config = layer.get_config()
    assert "activation" not in config
    assert (config["units"], config["bloom_size"], config["window"]) == (U, M, 1)
    clone = BloomBottleneck.from_config(config)
    assert (clone.units, clone.bloom_size, clone.window, clone.quantize) == (U, M, 1, False)
    assert clone.activation_quant is None
    clone.build(None)
    clone.set_weights(layer.get_weights())
    buckets, mask = inputs(9)
    np.testing.assert_array_equal(clone((buckets, mask)).numpy(), layer((buckets, mask)).numpy())
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, BloomBottleneck) and again.feature_size == 3 * M
