"""Tests for prado_tiny.layers.attention_pooling: masked softmax pooling over real tokens."""
import numpy as np
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.attention_pooling import AttentionPooling

D = 5


def batch(seed, lengths, tokens):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    x = rng.normal(0, 1, (len(lengths), tokens, D)).astype(np.float32)
    return x, mask


def make(seed=0, **kwargs):
    pool = AttentionPooling(**kwargs)
    pool.score.build(tf.TensorShape([None, None, D]))
    rng = np.random.default_rng(seed + 20)
    pool.score.kernel.assign(rng.normal(0, 1, [D, 1]).astype(np.float32))
    pool.score.bias.assign([0.3])
    return pool


def manual(pool, x, mask):
    """Softmax of the scores over the real tokens only, then the weighted sum."""
    k, b = pool.score.kernel.numpy(), pool.score.bias.numpy()
    out = []
    for xi, mi in zip(x, mask[..., 0]):
        real = xi[mi == 1]
        s = (real @ k + b)[:, 0]
        w = np.exp(s - s.max())
        w /= w.sum()
        out.append(w @ real)
    return np.array(out)


def test_equals_softmax_pooling_over_real_tokens():
    pool = make()
    x, mask = batch(1, [3, 6, 1], 6)
    out = pool(x, mask).numpy()
    assert out.shape == (3, D)
    np.testing.assert_allclose(out, manual(pool, x, mask), rtol=1e-4, atol=1e-5)


def test_padded_tokens_get_no_weight():
    pool = make(seed=2)
    x, mask = batch(3, [2, 4], 6)
    x[mask[..., 0] == 0] = 0.0  # the contract: padded token states are zero
    out = pool(x, mask).numpy()
    np.testing.assert_allclose(out, manual(pool, x, mask), rtol=1e-5, atol=1e-6)
    # The padding does not move the result compared with the batch cut to its real tokens.
    np.testing.assert_allclose(pool(x[:1, :2], mask[:1, :2]).numpy(), out[:1], rtol=1e-5,
                               atol=1e-6)
    # Nor do moderate values at the padded tokens: their weight is about exp(-mask_penalty).
    other = x.copy()
    other[mask[..., 0] == 0] = np.random.default_rng(4).normal(0, 1, (6, D))
    np.testing.assert_allclose(pool(other, mask).numpy(), out, rtol=1e-3, atol=1e-4)
    # Without the mask the padded tokens would count.
    full = pool(other, np.ones_like(mask)).numpy()
    assert not np.allclose(full, out, atol=1e-2)


def test_weights_of_padded_tokens_are_exactly_masked():
    pool = make(seed=4, mask_penalty=1.0)  # a weak penalty: softmax alone would leak
    x, mask = batch(5, [2], 4)
    x[0, 2:] = 0.0
    out = pool(x, mask).numpy()
    # The softmax weights of the real tokens no longer sum to one, but the padded tokens (zero)
    # add nothing: the output is a combination of the real tokens only.
    real = x[0, :2]
    coef, *_ = np.linalg.lstsq(real.T, out[0], rcond=None)
    np.testing.assert_allclose(real.T @ coef, out[0], atol=1e-5)


def test_training_tracks_ranges_and_quantized_output_on_grid():
    pool = make(seed=6, quantize=True)
    x, mask = batch(7, [3, 5], 5)
    out = pool(x, mask, training=True).numpy()
    lo = min(float(pool.pooled_quant.range_min), 0.0)
    hi = max(float(pool.pooled_quant.range_max), 0.0)
    step = (hi - lo) / 255
    np.testing.assert_allclose(out / step, np.round(out / step), atol=1e-3)
    # The masked scores' range holds the penalty.
    assert float(pool.masked_quant.range_min) < -10.0


def test_quantize_setter():
    pool = make()
    pool.quantize = True
    assert pool.score.quantize and pool.masked_quant.quantize and pool.pooled_quant.quantize
    assert pool.score.output_quant.quantize
    pool.quantize = False
    assert not (pool.score.quantize or pool.masked_quant.quantize or pool.pooled_quant.quantize)


def test_get_config_round_trip():
    pool = AttentionPooling(mask_penalty=12.0, quantize=True, name="pool")
    config = pool.get_config()
    assert config["mask_penalty"] == 12.0 and config["quantize"] is True
    clone = AttentionPooling.from_config(config)
    assert (clone.mask_penalty, clone.quantize, clone.name) == (12.0, True, "pool")
    assert clone.score.quantize
    again = keras.layers.deserialize(keras.layers.serialize(pool))
    assert isinstance(again, AttentionPooling) and again.mask_penalty == 12.0
