"""Tests for prado_tiny.layers.lstm: the CIFG recurrence, padding, directions, scan = unrolled, int8 ranges."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.lstm import BiLSTM

D, H = 5, 4


def batch(seed, lengths, tokens):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    return rng.normal(0, 1, (len(lengths), tokens, D)).astype(np.float32) * mask, mask


def make(seed=0, **kwargs):
    layer = BiLSTM(H, **kwargs)
    layer.build(tf.TensorShape([None, None, D]))
    rng = np.random.default_rng(seed + 10)
    for w in layer.trainable_weights:
        w.assign(rng.normal(0, 0.7, w.shape).astype(np.float32))
    return layer


def reference(layer, x, mask):
    """The CIFG recurrence written out in NumPy from the layer's weights."""
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731

    def direction(inp, rec, forward):
        xs, ms = (x, mask) if forward else (x[:, ::-1], mask[:, ::-1])
        xw = xs @ inp.kernel.numpy() + inp.bias.numpy()
        h = np.zeros((x.shape[0], H), np.float32)
        c = np.zeros_like(h)
        out = np.zeros((x.shape[0], x.shape[1], H), np.float32)
        for t in range(x.shape[1]):
            z, u, o = np.split(xw[:, t] + h @ rec.kernel.numpy(), 3, axis=-1)
            u = sig(u) * ms[:, t]
            c = (1 - u) * c + u * np.tanh(z)
            h = sig(o) * np.tanh(c)
            out[:, t] = h * ms[:, t]
        return out if forward else out[:, ::-1]
    return np.concatenate([direction(layer.inputs_forward, layer.recurrent_forward, True),
                           direction(layer.inputs_backward, layer.recurrent_backward, False)], -1)


def test_matches_the_recurrence_written_out():
    layer = make()
    x, mask = batch(0, [6, 3], 6)
    np.testing.assert_allclose(layer(x, mask).numpy(), reference(layer, x, mask), atol=1e-5)


def test_padding_changes_nothing_and_directions():
    layer = make()
    x, mask = batch(1, [7, 2, 5], 7)
    full, short = layer(x, mask).numpy(), layer(x[:, :5], mask[:, :5]).numpy()
    np.testing.assert_allclose(full[1:, :5], short[1:], atol=1e-6)
    assert np.all(full[1, 2:] == 0)
    changed = x.copy()
    changed[0, 3] += 1.0
    d = np.abs(layer(changed, mask).numpy() - full)[0]
    assert np.all(d[:3, :H] == 0) and np.all(d[3:, :H].max(-1) > 0)
    assert np.all(d[4:, H:] == 0) and np.all(d[:4, H:].max(-1) > 0)


@pytest.mark.parametrize("quantize", [False, True])
def test_scan_for_dynamic_length_equals_unrolled(quantize):
    layer = make(quantize=quantize)
    x, mask = batch(3, [5, 4], 5)
    if quantize:
        layer(x, mask, training=True)  # ranges
    dynamic = tf.function(lambda a, m: layer(a, m), input_signature=[
        tf.TensorSpec([None, None, D]), tf.TensorSpec([None, None, 1])])
    np.testing.assert_allclose(dynamic(x, mask).numpy(), layer(x, mask).numpy(), atol=1e-6)


def test_quantized_training_tracks_the_sum_range_across_steps_and_stays_in_range():
    layer = make(quantize=True)
    x, mask = batch(4, [6, 6], 6)
    fn = tf.function(lambda a, m: layer(a, m, training=True), input_signature=[
        tf.TensorSpec([None, None, D]), tf.TensorSpec([None, None, 1])])
    out = fn(x, mask).numpy()  # the scan path, in training: ranges assigned inside the loop
    assert float(layer.sum_forward.seen) == 1.0 and float(layer.sum_forward.range_max) > 0
    assert np.abs(out).max() <= 1.0 + 1e-6


def test_gradients_and_config():
    layer = make()
    x, mask = batch(5, [5, 3], 5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, mask, training=True) ** 2)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
    with pytest.raises(ValueError):
        BiLSTM(0)
    clone = BiLSTM.from_config(BiLSTM(6, quantize=True, name="l").get_config())
    assert clone.units == 6 and clone.quantize
    assert keras.utils.get_registered_object("prado_tiny>BiLSTM") is BiLSTM
