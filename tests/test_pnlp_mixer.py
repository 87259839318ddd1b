"""Tests for prado_tiny.models.pnlp_mixer: config validation and the two input forms agreeing."""
import json

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.layers.fake_quant import set_quantize
from prado_tiny.layers.minhash_projection import MinHashFeaturizer
from prado_tiny.models.pnlp_mixer import PNLPMixer, PNLPMixerConfig, export_model

T = 8
TEXTS = ["set an alarm for 7 am", "what's the weather in Zürich tomorrow",
         "hi", "remind me to call mom at noon on friday please ok thanks"]


def config(**kwargs):
    args = dict(num_intents=5, num_slot_tags=7, max_seq_len=T, bloom_size=64, hidden_dim=16,
                num_hashes=8, window=1)
    args.update(kwargs)
    return PNLPMixerConfig(**args)


@pytest.fixture(scope="module")
def data():
    codepoints = TextEncoder(max_tokens=T, max_chars=8).encode_texts(TEXTS).codepoints
    buckets, mask = MinHashFeaturizer(num_hashes=8, bloom_size=64, window=1).buckets(codepoints)
    return codepoints, buckets, mask


# -- config ----------------------------------------------------------------------------------

def test_config_defaults():
    c = config()
    assert c.token_mlp_dim == T and c.channel_mlp_dim == 16
    c = config(token_mlp_dim=3, channel_mlp_dim=5)
    assert (c.token_mlp_dim, c.channel_mlp_dim) == (3, 5)
    c = PNLPMixerConfig(num_intents=2, num_slot_tags=3)
    assert c.token_mlp_dim == c.max_seq_len == 64 and c.channel_mlp_dim == c.hidden_dim


@pytest.mark.parametrize("bad", [dict(intent_mode="softmax"), dict(num_intents=0),
                                 dict(num_slot_tags=0), dict(max_seq_len=0), dict(hidden_dim=0),
                                 dict(num_layers=0), dict(num_intents=-1)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        config(**bad)


def test_config_json_round_trip_and_unknown_keys():
    c = config(intent_mode="multi_label", dropout=0.1)
    assert PNLPMixerConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="hidden_size"):
        PNLPMixerConfig.from_dict({"num_intents": 2, "num_slot_tags": 3, "hidden_size": 8})


# -- model -----------------------------------------------------------------------------------

def outputs(model, codepoints, buckets, mask, training=False):
    a = model({"codepoints": tf.constant(codepoints)}, training=training)
    b = model({"buckets": tf.constant(buckets), "token_mask": tf.constant(mask)},
              training=training)
    return {k: v.numpy() for k, v in a.items()}, {k: v.numpy() for k, v in b.items()}


def test_both_input_forms_agree(data):
    codepoints, buckets, mask = data
    encoded = TextEncoder(max_tokens=T, max_chars=8).encode_texts(TEXTS).num_encoded
    assert mask.sum(1).tolist() == list(encoded) and min(encoded) < T == max(encoded)
    np.testing.assert_array_equal(mask, (codepoints[..., 0] != 0).astype(mask.dtype))
    model = PNLPMixer(config())
    a, b = outputs(model, codepoints, buckets, mask)
    assert a["intent"].shape == (len(TEXTS), 5) and a["slots"].shape == (len(TEXTS), T, 7)
    np.testing.assert_allclose(a["intent"], b["intent"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a["slots"], b["slots"], rtol=1e-4, atol=1e-4)
    # Different texts give different outputs (the features are really read).
    assert not np.allclose(a["intent"][0], a["intent"][1])


def test_bucket_form_on_trimmed_batch_equals_full_batch(data):
    _, buckets, mask = data
    model = PNLPMixer(config(window=0))
    t = int(mask.sum(1).max() - 1)  # cut every example to t tokens
    cut = mask.copy()
    cut[:, t:] = 0
    full = model({"buckets": buckets, "token_mask": cut})
    trimmed = model({"buckets": buckets[:, :t], "token_mask": cut[:, :t]})
    np.testing.assert_allclose(trimmed["intent"], full["intent"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trimmed["slots"], full["slots"][:, :t], rtol=1e-4, atol=1e-5)


def train_steps(model, buckets, mask, steps=2):
    opt = keras.optimizers.SGD(0.05)
    intent = tf.constant([1, 2, 3, 4])
    slots = tf.constant(np.random.default_rng(0).integers(0, 7, mask.shape))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    for _ in range(steps):
        with tf.GradientTape() as tape:
            out = model({"buckets": buckets, "token_mask": mask}, training=True)
            loss = loss_fn(intent, out["intent"]) + loss_fn(slots, out["slots"], sample_weight=mask)
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
    return float(loss)


def test_both_input_forms_agree_after_quantized_training(data):
    codepoints, buckets, mask = data
    model = PNLPMixer(config(), quantize=True)
    before = model({"buckets": buckets, "token_mask": mask})["intent"].numpy()
    train_steps(model, buckets, mask)
    fqs = [m for m in model.submodules if hasattr(m, "range_max")]
    assert fqs and all(float(m.seen) == 1.0 for m in fqs if "quant" in m.name)
    a, b = outputs(model, codepoints, buckets, mask)
    assert not np.allclose(a["intent"], before)
    # Equal up to a rare flip of a value on an int8 grid boundary.
    for key in ("intent", "slots"):
        assert np.mean(np.isclose(a[key], b[key], atol=1e-4)) > 0.9, key
        np.testing.assert_allclose(a[key], b[key], atol=0.1)


def test_set_quantize_reaches_every_layer(data):
    _, buckets, mask = data
    model = PNLPMixer(config())
    model({"buckets": buckets, "token_mask": mask})
    n = set_quantize(model, True)
    layers = [m for m in model.submodules if hasattr(m, "quantize") and m is not model]
    assert n == len(layers) > 10
    assert all(m.quantize for m in layers)
    assert all(m.quantize for b in model.blocks for m in b._quantized_layers())


def test_multi_label_and_layers_shapes(data):
    codepoints, _, _ = data
    model = PNLPMixer(config(intent_mode="multi_label", num_layers=1, num_intents=3))
    out = model({"codepoints": codepoints})
    assert out["intent"].shape == (len(TEXTS), 3) and out["slots"].shape == (len(TEXTS), T, 7)
    assert len(model.blocks) == 1


def test_export_model_matches(data):
    codepoints, _, _ = data
    model = PNLPMixer(config())
    expect = model({"codepoints": codepoints})
    exported = export_model(model, codepoints.shape[1:], batch_size=len(TEXTS))
    intent, slots = exported(codepoints)
    assert exported.output_names == ["intent", "slots"]
    assert exported.inputs[0].shape == (len(TEXTS), T, 8)
    np.testing.assert_allclose(intent.numpy(), expect["intent"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(slots.numpy(), expect["slots"].numpy(), rtol=1e-5, atol=1e-6)
    # The export shares the weights.
    assert {id(v) for v in exported.trainable_variables} <= {id(v) for v in model.trainable_variables}


def test_get_config_round_trip():
    model = PNLPMixer(config(dropout=0.1), quantize=True, name="mixer")
    clone = PNLPMixer.from_config(model.get_config())
    assert clone.config == model.config and clone.quantize and clone.name == "mixer"
    assert PNLPMixer(model.config.__dict__).config == model.config
