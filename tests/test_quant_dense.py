"""Tests for prado_tiny.layers.quant_dense: a Dense layer with 8-bit fake quantization."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.quant_dense import QuantDense


def rand(shape, seed, scale=1.0):
    return np.random.default_rng(seed).normal(0.0, scale, shape).astype(np.float32)


def with_bias(layer, input_dim, seed=0):
    """Builds `layer` and gives it a non-zero bias (the initializer's zeros would hide it)."""
    layer.build(tf.TensorShape([None, input_dim]))
    layer.bias.assign(rand([layer.units], seed + 100))
    return layer


def test_rank_2_is_matmul_plus_bias():
    layer = with_bias(QuantDense(5), 4)
    x = rand([3, 4], 1)
    expect = x @ layer.kernel.numpy() + layer.bias.numpy()
    np.testing.assert_allclose(layer(x, training=True).numpy(), expect, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer(x).numpy(), expect, rtol=1e-5, atol=1e-6)


def test_rank_3_is_matmul_plus_bias():
    layer = with_bias(QuantDense(6), 4)
    x = rand([2, 3, 4], 2)
    expect = np.einsum("btd,du->btu", x, layer.kernel.numpy()) + layer.bias.numpy()
    out = layer(x)
    assert out.shape == (2, 3, 6)
    np.testing.assert_allclose(out.numpy(), expect, rtol=1e-5, atol=1e-6)


def test_rank_3_with_unknown_leading_dims():
    layer = with_bias(QuantDense(6), 4)
    run = tf.function(lambda x: layer(x), input_signature=[tf.TensorSpec([None, None, 4])])
    for shape in ([2, 3, 4], [1, 7, 4]):
        x = rand(shape, 3)
        expect = np.einsum("btd,du->btu", x, layer.kernel.numpy()) + layer.bias.numpy()
        np.testing.assert_allclose(run(x).numpy(), expect, rtol=1e-5, atol=1e-6)


def test_no_bias():
    layer = QuantDense(3, use_bias=False)
    x = rand([2, 4], 4)
    out = layer(x)
    assert layer.bias is None
    assert len(layer.trainable_weights) == 1
    np.testing.assert_allclose(out.numpy(), x @ layer.kernel.numpy(), rtol=1e-5, atol=1e-6)


def test_quantized_kernel_on_symmetric_grid():
    layer = QuantDense(40, quantize=True)
    layer.build(tf.TensorShape([None, 30]))
    k = layer.kernel.numpy()
    qk = layer.quantized_kernel().numpy()
    a = np.abs(k).max()
    assert len(np.unique(qk)) <= 255
    step = a / 127.0
    np.testing.assert_allclose(qk / step, np.round(qk / step), atol=1e-3)
    assert np.abs(qk - k).max() <= step / 2 * 1.01
    assert not np.array_equal(qk, k)
    # Without quantization the kernel is used as is.
    layer.quantize = False
    np.testing.assert_array_equal(layer.quantized_kernel().numpy(), k)


def test_quantized_forward_pass():
    layer = with_bias(QuantDense(8, quantize=True), 5)
    x = rand([6, 5], 5)
    out = layer(x, training=True).numpy()
    y = x @ layer.quantized_kernel().numpy() + layer.bias.numpy()
    # The first training batch sets the output range, then the output is rounded on its grid.
    lo, hi = min(float(y.min()), 0.0), max(float(y.max()), 0.0)
    expect = tf.quantization.fake_quant_with_min_max_vars(y, lo, hi, num_bits=8).numpy()
    np.testing.assert_allclose(out, expect, atol=1e-5)
    assert len(np.unique(out)) <= 256
    assert not np.allclose(out, x @ layer.kernel.numpy() + layer.bias.numpy(), atol=1e-7)


def test_ranges_tracked_without_quantize():
    layer = QuantDense(4, activation="relu")
    x = rand([3, 5], 6)
    out = layer(x, training=True).numpy()
    y = x @ layer.kernel.numpy()
    assert float(layer.output_quant.range_min) == pytest.approx(float(y.min()), abs=1e-5)
    assert float(layer.output_quant.range_max) == pytest.approx(float(y.max()), abs=1e-5)
    assert float(layer.activation_quant.range_min) == pytest.approx(float(out.min()), abs=1e-6)
    assert float(layer.activation_quant.range_max) == pytest.approx(float(out.max()), abs=1e-6)


@pytest.mark.parametrize("activation,fn", [
    ("relu", lambda y: np.maximum(y, 0.0)),
    ("tanh", np.tanh),
])
def test_activation_path(activation, fn):
    layer = with_bias(QuantDense(5, activation=activation), 4)
    assert layer.activation_quant is not None
    x = rand([3, 4], 7, scale=2.0)
    expect = fn(x @ layer.kernel.numpy() + layer.bias.numpy())
    np.testing.assert_allclose(layer(x, training=True).numpy(), expect, rtol=1e-5, atol=1e-6)


def test_no_activation_has_no_activation_quant():
    layer = QuantDense(3)
    assert layer.activation_quant is None
    layer(rand([2, 4], 8), training=True)
    assert [w.name.split("/")[-1].split(":")[0] for w in layer.non_trainable_weights] == [
        "range_min", "range_max", "seen"]


def test_quantize_setter_reaches_the_fake_quants():
    layer = QuantDense(3, activation="relu")
    assert not layer.output_quant.quantize and not layer.activation_quant.quantize
    layer.quantize = True
    assert layer.quantize and layer.output_quant.quantize and layer.activation_quant.quantize
    layer.quantize = False
    assert not (layer.output_quant.quantize or layer.activation_quant.quantize)


def test_bad_units():
    with pytest.raises(ValueError):
        QuantDense(0)


@pytest.mark.parametrize("activation", [None, "gelu"])
def test_get_config_round_trip(activation):
    layer = with_bias(QuantDense(4, activation=activation, use_bias=True, quantize=True,
                                 kernel_initializer="he_normal", name="qd"), 3)
    config = layer.get_config()
    assert config["units"] == 4 and config["quantize"] is True and config["use_bias"] is True
    clone = QuantDense.from_config(config)
    assert (clone.units, clone.use_bias, clone.quantize, clone.name) == (4, True, True, "qd")
    assert (clone.activation_quant is None) == (activation is None)
    assert isinstance(clone.kernel_initializer, keras.initializers.HeNormal)
    clone.build(tf.TensorShape([None, 3]))
    clone.set_weights(layer.get_weights())
    x = rand([2, 3], 9)
    # Same weights and (untouched) ranges: same function.
    np.testing.assert_array_equal(clone(x).numpy(), layer(x).numpy())
    clone.quantize = layer.quantize = False
    np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy())
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(again, QuantDense) and again.units == 4
