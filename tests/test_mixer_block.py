"""Tests for prado_tiny.layers.mixer_block: padding stays zero and does not reach real tokens."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.mixer_block import MixerBlock

L = 8  # max_seq_len
D = 6  # hidden


def batch(seed, lengths, tokens):
    """x [B, tokens, D], zero at padding (the input contract), and mask [B, tokens, 1]."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    x = rng.normal(0, 1, (len(lengths), tokens, D)).astype(np.float32) * mask
    return x, mask


def pad_to(x, mask, tokens):
    extra = tokens - x.shape[1]
    return (np.pad(x, [[0, 0], [0, extra], [0, 0]]), np.pad(mask, [[0, 0], [0, extra], [0, 0]]))


def make(seed=0, quantize=False, dropout=0.0):
    block = MixerBlock(L, token_mlp_dim=5, channel_mlp_dim=7, dropout=dropout, quantize=quantize)
    block.build(tf.TensorShape([None, None, D]))
    rng = np.random.default_rng(seed + 10)
    # Non-trivial biases and norm parameters, so that no padding leak hides behind a zero.
    for w in block.weights:
        if w.trainable:
            w.assign(rng.normal(0, 0.5, w.shape).astype(np.float32) + (1.0 if "gamma" in w.name
                                                                       else 0.0))
    return block


def test_output_is_zero_at_padded_positions():
    block = make()
    x, mask = batch(1, [3, 8, 5], L)
    out = block(x, mask).numpy()
    assert out.shape == x.shape
    assert np.all(out[mask[..., 0] == 0] == 0.0)
    assert np.abs(out[mask[..., 0] == 1]).min() > 0


def test_output_is_zero_at_padded_positions_in_training_with_dropout():
    block = make(dropout=0.5)
    x, mask = batch(2, [2, 6], L)
    out = block(x, mask, training=True).numpy()
    assert np.all(out[mask[..., 0] == 0] == 0.0)


@pytest.mark.parametrize("lengths", [[3, 5, 1], [5, 5, 5], [1]])
def test_trimmed_batch_equals_padded_batch(lengths):
    """A batch trimmed to its longest example gives what the max_seq_len batch gives."""
    block = make(seed=3)
    t = max(lengths)
    x, mask = batch(4, lengths, t)
    trimmed = block(x, mask).numpy()
    xp, mp = pad_to(x, mask, L)
    padded = block(xp, mp).numpy()
    np.testing.assert_allclose(trimmed, padded[:, :t], rtol=1e-5, atol=1e-5)
    assert np.all(padded[:, t:] == 0.0)


def test_trimmed_batch_equals_padded_batch_with_dynamic_length():
    block = make(seed=5)
    run = tf.function(lambda x, m: block(x, m), input_signature=[
        tf.TensorSpec([None, None, D]), tf.TensorSpec([None, None, 1])])
    for lengths in ([2, 4], [7, 1, 3]):
        t = max(lengths)
        x, mask = batch(6, lengths, t)
        xp, mp = pad_to(x, mask, L)
        np.testing.assert_allclose(run(x, mask).numpy(), block(xp, mp).numpy()[:, :t],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(run(x, mask).numpy(), block(x, mask).numpy(), rtol=1e-6,
                                   atol=1e-6)


def test_real_positions_mix_across_tokens():
    """Token mixing is real: changing one real token changes another real token's output."""
    block = make(seed=7)
    x, mask = batch(8, [4], L)
    other = x.copy()
    other[0, 0] *= -2.0  # not a constant shift: LayerNorm would remove that
    a, b = block(x, mask).numpy(), block(other, mask).numpy()
    assert not np.allclose(a[0, 2], b[0, 2])
    np.testing.assert_array_equal(a[0, 4:], b[0, 4:])


def test_gradients_do_not_reach_padded_inputs():
    block = make(seed=9)
    x, mask = batch(10, [3, 6], L)
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(block(xv, mask, training=True) ** 2)
    g = tape.gradient(loss, xv).numpy()
    assert np.all(g[mask[..., 0] == 0] == 0.0)
    assert np.abs(g[mask[..., 0] == 1]).max() > 0


def test_quantized_trimmed_equals_padded_after_ranges_are_set():
    block = make(seed=11, quantize=True)
    x, mask = batch(12, [3, 5], 5)
    xp, mp = pad_to(x, mask, L)
    block(xp, mp, training=True)  # sets the ranges
    trimmed = block(x, mask).numpy()
    padded = block(xp, mp).numpy()
    assert np.all(padded[:, 5:] == 0.0) and np.all(trimmed[mask[..., 0] == 0] == 0.0)
    close = np.isclose(trimmed, padded[:, :5], atol=1e-5)
    # Equal up to a rare flip of a value on a grid boundary.
    assert close.mean() > 0.95
    np.testing.assert_allclose(trimmed, padded[:, :5], atol=0.2)


def test_quantize_setter_reaches_nested_layers():
    block = make()
    block.quantize = True
    layers = block._quantized_layers()
    assert len(layers) == 9 and all(layer.quantize for layer in layers)
    assert block.channel_in.activation_quant.quantize
    block.quantize = False
    assert not any(layer.quantize for layer in layers)
    assert not block.channel_in.output_quant.quantize


def test_get_config_round_trip():
    block = MixerBlock(L, token_mlp_dim=5, channel_mlp_dim=7, dropout=0.25,
                       layer_norm_epsilon=1e-6, quantize=True, name="mb")
    config = block.get_config()
    clone = MixerBlock.from_config(config)
    for key in ("max_seq_len", "token_mlp_dim", "channel_mlp_dim", "dropout",
                "layer_norm_epsilon", "quantize", "name"):
        assert getattr(clone, key) == getattr(block, key), key
    assert clone.get_config() == config
    again = keras.layers.deserialize(keras.layers.serialize(block))
    assert isinstance(again, MixerBlock) and again.max_seq_len == L
    # Same weights, same function.
    source = make(seed=13)
    copy = MixerBlock.from_config(source.get_config())
    copy.build(tf.TensorShape([None, None, D]))
    copy.set_weights(source.get_weights())
    x, mask = batch(14, [2, 7], L)
    np.testing.assert_array_equal(copy(x, mask).numpy(), source(x, mask).numpy())
