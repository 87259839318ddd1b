"""Tests for prado_tiny.layers.transformer_block: masking, trimmed = padded, attention across tokens."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.transformer_block import TransformerBlock

D = 8


def batch(seed, lengths, tokens):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    return rng.normal(0, 1, (len(lengths), tokens, D)).astype(np.float32) * mask, mask


def make(**kwargs):
    block = TransformerBlock(num_heads=2, ff_dim=12, **kwargs)
    block.build(tf.TensorShape([None, None, D]))
    rng = np.random.default_rng(3)
    for w in block.trainable_weights:
        w.assign(rng.normal(0, 0.4, w.shape).astype(np.float32) + (1.0 if "gamma" in w.name else 0.0))
    return block


def test_padding_stays_zero_and_trimmed_equals_padded():
    block = make()
    x, mask = batch(0, [6, 3], 6)
    full = block(x, mask).numpy()
    assert np.all(full[1, 3:] == 0)
    short = block(x[1:, :3], mask[1:, :3]).numpy()
    np.testing.assert_allclose(short[0], full[1, :3], atol=1e-5)
    dynamic = tf.function(lambda a, m: block(a, m), input_signature=[
        tf.TensorSpec([None, None, D]), tf.TensorSpec([None, None, 1])])
    np.testing.assert_allclose(dynamic(x, mask).numpy(), full, atol=1e-5)


def test_every_real_token_attends_to_every_other():
    block = make()
    x, mask = batch(1, [5], 5)
    changed = x.copy()
    # Not a constant shift: LayerNorm removes a token's mean, so `+= 1.0` would change nothing.
    changed[0, 4] += np.linspace(-1.0, 1.0, D, dtype=np.float32)
    d = np.abs(block(changed, mask).numpy() - block(x, mask).numpy())[0].max(-1)
    assert np.all(d > 1e-4), d
    # ... but never to padding: changing a padded input changes nothing.
    x2, mask2 = batch(1, [3], 5)
    noisy = x2.copy()
    noisy[0, 4] = 5.0
    np.testing.assert_allclose(block(noisy, mask2).numpy()[0, :3], block(x2, mask2).numpy()[0, :3],
                               atol=1e-6)


def test_quantized_block_and_config():
    block = make(quantize=True)
    x, mask = batch(2, [6, 4], 6)
    block(x, mask, training=True)
    assert all(float(q.seen) == 1.0 for q in block.quants)
    assert not np.allclose(block(x, mask).numpy(), make()(x, mask).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="divisible"):
        TransformerBlock(3, 4)(tf.ones([1, 2, 8]), tf.ones([1, 2, 1]))
    clone = TransformerBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    assert keras.utils.get_registered_object("prado_tiny>TransformerBlock") is TransformerBlock
