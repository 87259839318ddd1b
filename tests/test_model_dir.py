"""Tests for prado_tiny.models.model_dir: the featurizer of each model type and text distortion
of training batches."""
import numpy as np
import pytest

from prado_tiny.data import demo
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab
from prado_tiny.layers.minhash_projection import MinHashFeaturizer
from prado_tiny.layers.ternary_projection import TernaryFeaturizer
from prado_tiny.models import model_dir as md

PQRNN = {"model_type": "pqrnn", "intent_mode": "joint", "input": "codepoints",
         "config": {"max_seq_len": 16, "num_features": 64, "seed": 0}}
MIXER = {"model_type": "pnlp_mixer", "intent_mode": "joint", "input": "codepoints",
         "config": {"max_seq_len": 16, "num_hashes": 8, "ngram_size": 3, "bloom_size": 64,
                    "window": 1, "seed": 0}}


@pytest.fixture(scope="module")
def examples():
    return list(demo.read(split="train", languages=["en", "hi"]))[:64]


@pytest.mark.parametrize("spec, cls, key, dtype", [(PQRNN, TernaryFeaturizer, "projection", np.int8),
                                                    (MIXER, MinHashFeaturizer, "buckets", np.int16)])
def test_featurize_per_model_type(examples, spec, cls, key, dtype):
    encoder = TextEncoder(max_tokens=16, max_chars=24)
    vocab = LabelVocab.from_examples(examples)
    assert isinstance(md.featurizer(spec), cls)
    fs = md.featurize(examples, spec, encoder, vocab)
    features, _ = fs.batch([0, 1])
    assert set(features) == {key, "token_mask"} and features[key].dtype == dtype


@pytest.mark.parametrize("spec, key", [(PQRNN, "projection"), (MIXER, "buckets")])
def test_distortion_changes_real_tokens_only_and_repeats_with_the_seed(examples, spec, key):
    encoder = TextEncoder(max_tokens=16, max_chars=24)
    vocab = LabelVocab.from_examples(examples)
    fs = md.featurize(examples, spec, encoder, vocab)
    index = np.arange(32)
    features, _ = fs.batch(index)
    batch_examples = [examples[i] for i in index]
    augment = md.distortion_augmenter(spec, encoder, 0.3)
    a = augment(features, batch_examples, np.random.default_rng(1))
    b = augment(features, batch_examples, np.random.default_rng(1))
    c = augment(features, batch_examples, np.random.default_rng(2))
    np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a[key], c[key])
    real = features["token_mask"].astype(bool)
    changed = np.any(a[key] != features[key], axis=-1)
    assert 0.2 < changed[real].mean() < 1.0  # many tokens (not all) got an edit
    assert not changed[~real].any()  # padding stays padding
    np.testing.assert_array_equal(a["token_mask"], features["token_mask"])
    # The cached clean features are untouched; probability 0 changes nothing.
    np.testing.assert_array_equal(fs.batch(index)[0][key], features[key])
    same = md.distortion_augmenter(spec, encoder, 0.0)(features, batch_examples,
                                                        np.random.default_rng(1))
    np.testing.assert_array_equal(same[key], features[key])


def test_a_folder_that_predates_a_config_option_compares_by_its_default():
    """A pqrnn_matt folder written before `int8_internals` existed was trained without it: its
    spec compares as False (so --noint8_internals resumes it and the new default names the one
    difference), never as a missing key."""
    import dataclasses

    from prado_tiny.models.pqrnn_matt import PQRNNMAttConfig
    config = dataclasses.asdict(PQRNNMAttConfig(output_vocab_size=84, pointer_offset=20))
    legacy = {"model_type": "pqrnn_matt", "config": {k: v for k, v in config.items()
                                                     if k != "int8_internals"}}
    filled = md.with_config_defaults(legacy)
    assert filled["config"]["int8_internals"] is False and "int8_internals" not in legacy["config"]
    assert md.spec_differences(filled, {**legacy, "config": config}) == []
    new = {**legacy, "config": dict(config, int8_internals=True)}
    assert md.spec_differences(filled, new) == ["config.int8_internals: False -> True"]
    # Unknown model types and keys already present are left as they are.
    assert md.with_config_defaults({"model_type": "x", "config": {}}) == {"model_type": "x", "config": {}}
    assert md.with_config_defaults(new)["config"]["int8_internals"] is True
