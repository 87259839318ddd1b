"""Tests for prado_tiny.layers.fake_quant: moving-average ranges, the 8-bit grid, set_quantize."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, quantize_weight, set_quantize
from prado_tiny.layers.quant_dense import QuantDense


def rand(shape, seed, lo=-1.0, hi=1.0):
    return tf.constant(np.random.default_rng(seed).uniform(lo, hi, shape).astype(np.float32))


def ranges(fq):
    return float(fq.range_min.numpy()), float(fq.range_max.numpy())


def grid_step(lo, hi):
    """The step of the grid the layer quantizes to (before TF nudges the zero point)."""
    lo, hi = span(lo, hi)
    return (hi - lo) / 255.0


def span(lo, hi):
    """The range the grid covers: the tracked one widened to hold 0."""
    lo = min(lo, 0.0)
    return lo, max(hi, 0.0, lo + 1e-3)


def test_first_training_batch_sets_the_range():
    fq = FakeQuant()
    x = rand([4, 6], 0, -2.0, 3.0)
    fq(x, training=True)
    lo, hi = ranges(fq)
    assert lo == pytest.approx(float(tf.reduce_min(x)))
    assert hi == pytest.approx(float(tf.reduce_max(x)))
    assert float(fq.seen.numpy()) == 1.0


def test_later_batches_move_the_range_with_decay():
    decay = 0.9
    fq = FakeQuant(decay=decay)
    batches = [rand([3, 5], s, -1.0 - s, 1.0 + 2 * s) for s in range(4)]
    expect_lo = expect_hi = None
    for x in batches:
        fq(x, training=True)
        bmin, bmax = float(tf.reduce_min(x)), float(tf.reduce_max(x))
        if expect_lo is None:
            expect_lo, expect_hi = bmin, bmax
        else:
            expect_lo = decay * expect_lo + (1 - decay) * bmin
            expect_hi = decay * expect_hi + (1 - decay) * bmax
        lo, hi = ranges(fq)
        assert lo == pytest.approx(expect_lo, rel=1e-5)
        assert hi == pytest.approx(expect_hi, rel=1e-5)


def test_no_range_update_outside_training():
    fq = FakeQuant(quantize=True)
    fq(rand([2, 3], 1), training=True)
    before = ranges(fq)
    fq(rand([2, 3], 2, -10.0, 10.0), training=False)
    fq(rand([2, 3], 3, -10.0, 10.0))  # training=None
    assert ranges(fq) == before


def test_no_range_update_outside_training_in_tf_function():
    fq = FakeQuant()
    fq(rand([2, 3], 1), training=True)
    before = ranges(fq)
    tf.function(lambda x: fq(x, training=False))(rand([2, 3], 2, -10.0, 10.0))
    assert ranges(fq) == before
    tf.function(lambda x: fq(x, training=True))(rand([2, 3], 2, -10.0, 10.0))
    assert ranges(fq) != before


def test_quantize_false_is_identity_but_tracks_the_range():
    fq = FakeQuant(quantize=False)
    x = rand([5, 7], 4, -3.0, 2.0)
    y = fq(x, training=True)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    lo, hi = ranges(fq)
    assert lo == pytest.approx(float(tf.reduce_min(x)))
    assert hi == pytest.approx(float(tf.reduce_max(x)))
    np.testing.assert_array_equal(fq(x, training=False).numpy(), x.numpy())


@pytest.mark.parametrize("lo,hi", [(-2.0, 3.0), (1.0, 3.0), (-4.0, -1.0)])
def test_quantized_output_lies_on_the_8_bit_grid(lo, hi):
    fq = FakeQuant(quantize=True)
    x = rand([64, 32], 5, lo, hi)
    y = fq(x, training=True).numpy()
    rmin, rmax = ranges(fq)
    step = grid_step(rmin, rmax)
    # The grid holds 0 exactly, so every output is a whole number of steps from 0.
    k = y / step
    np.testing.assert_allclose(k, np.round(k), atol=1e-3)
    assert len(np.unique(y)) <= 256
    # The grid spans [min(lo, 0), hi] (to one step of nudging): in range, and each input is
    # rounded to a neighbouring grid point.
    span_lo, span_hi = span(rmin, rmax)
    assert y.min() >= span_lo - step and y.max() <= span_hi + step
    clipped = np.clip(x.numpy(), span_lo, span_hi)
    assert np.abs(y - clipped).max() <= step * 1.01
    # Zero is exactly representable.
    assert float(fq(tf.zeros([1, 1]), training=False)[0, 0]) == 0.0


def test_quantized_positive_inputs_use_a_range_down_to_zero():
    fq = FakeQuant(quantize=True)
    x = rand([32, 8], 6, 1.0, 3.0)
    y = fq(x, training=True).numpy()
    rmin, rmax = ranges(fq)
    assert rmin > 0.9  # the tracked range itself is the data's
    step = grid_step(rmin, rmax)
    assert step == pytest.approx(rmax / 255.0)  # but the grid spans [0, hi]
    np.testing.assert_allclose(y / step, np.round(y / step), atol=1e-3)


def test_quantized_gradient_is_straight_through_inside_the_range():
    fq = FakeQuant(quantize=True)
    fq(tf.constant([-2.0, 2.0]), training=True)
    x = tf.Variable(rand([4, 4], 7))  # strictly inside the range
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(fq(x, training=False) * 3.0)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 3.0)
    outside = tf.Variable([5.0, -5.0])
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(fq(outside, training=False))
    np.testing.assert_array_equal(tape.gradient(y, outside).numpy(), 0.0)


def test_all_negative_range_is_not_clipped():
    """The grid spans [lo, 0] for negative data: the lowest values keep their place."""
    fq = FakeQuant(quantize=True)
    x = tf.constant([[-4.0, -3.5, -2.0, -1.0]])
    y = fq(x, training=True).numpy()
    assert ranges(fq) == (-4.0, -1.0)
    np.testing.assert_allclose(y, x.numpy(), atol=4.0 / 255)


def test_bad_decay():
    for decay in (1.0, -0.1):
        with pytest.raises(ValueError):
            FakeQuant(decay=decay)


def test_quantize_weight_is_symmetric_with_zero_at_zero():
    w = rand([20, 30], 8, -0.7, 0.5)
    q = quantize_weight(w).numpy()
    a = float(tf.reduce_max(tf.abs(w)))
    step = a / 127.0
    np.testing.assert_allclose(q / step, np.round(q / step), atol=1e-3)
    assert np.abs(q).max() == pytest.approx(a, rel=1e-5)
    assert np.abs(q - w.numpy()).max() <= step / 2 * 1.01
    assert len(np.unique(q)) <= 255
    np.testing.assert_allclose(quantize_weight(-w).numpy(), -q, atol=1e-7)
    zeros = quantize_weight(tf.constant([0.0, 0.0, 1.0])).numpy()
    assert zeros[0] == 0.0 and zeros[1] == 0.0
    np.testing.assert_array_equal(quantize_weight(tf.zeros([3])).numpy(), 0.0)


def test_quantize_weight_gradient_is_straight_through():
    w = tf.Variable(rand([3, 4], 9))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(quantize_weight(w) * 2.0)
    np.testing.assert_allclose(tape.gradient(y, w).numpy(), 2.0)


class Nested(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fq = FakeQuant(name="fq")
        self.dense = QuantDense(3, activation="relu", name="dense")

    def call(self, x, training=None):
        return self.dense(self.fq(x, training=training), training=training)


def quant_layers(model):
    return [m for m in model.submodules if hasattr(m, "quantize") and m is not model]


def test_set_quantize_switches_nested_layers():
    inp = keras.Input((4,))
    nested = Nested()
    out = FakeQuant(name="top")(nested(inp))
    model = keras.Model(inp, out)
    layers = quant_layers(model)
    # top, nested.fq, nested.dense and the dense layer's two output FakeQuants.
    assert len(layers) == 5
    assert not any(layer.quantize for layer in layers)
    x = rand([2, 4], 10)
    plain = model(x, training=True).numpy()
    assert set_quantize(model, True) == 5
    assert all(layer.quantize for layer in layers)
    assert nested.dense.output_quant.quantize and nested.dense.activation_quant.quantize
    quantized = model(x, training=False).numpy()
    step = grid_step(*ranges(model.get_layer("top")))
    np.testing.assert_allclose(quantized / step, np.round(quantized / step), atol=1e-3)
    assert set_quantize(model, False) == 5
    assert not any(layer.quantize for layer in layers)
    np.testing.assert_array_equal(model(x, training=False).numpy(), plain)


def test_get_config_round_trip():
    fq = FakeQuant(quantize=True, decay=0.95, name="my_fq")
    config = fq.get_config()
    assert config["quantize"] is True and config["decay"] == 0.95
    clone = FakeQuant.from_config(config)
    assert (clone.quantize, clone.decay, clone.name) == (True, 0.95, "my_fq")
    again = keras.layers.deserialize(keras.layers.serialize(fq))
    assert isinstance(again, FakeQuant)
    assert (again.quantize, again.decay) == (True, 0.95)
