"""Tests for prado_tiny.data.feature_cache."""
import numpy as np
import pytest

from prado_tiny.data.example import Example
from prado_tiny.data.feature_cache import FeatureCache, example_key
from prado_tiny.data.text_encoder import TextEncoder


def make_examples(n=10):
    return [Example(id=f"train:{i}", language="en", utterance=f"wake me at {i}",
                    tokens=["wake", "me", "at", str(i)], offsets=[], intent="IN:ALARM",
                    slots=["O"] * 4) for i in range(n)]


class CountingFeaturizer:
    """Encodes token lists and counts how many examples it had to compute."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.computed = 0

    def __call__(self, examples, indices):
        self.computed += len(indices)
        return self.encoder.encode_tokens_batch([examples[i].tokens for i in indices])


def epoch(cache, featurizer, examples, batch_size=4):
    out = []
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        keys = [example_key(ex) for ex in batch]
        out.append(cache.get_or_compute(keys, lambda idx, b=batch: featurizer(b, idx)))
    return np.concatenate(out)


def test_second_epoch_pays_nothing():
    encoder = TextEncoder(max_tokens=8, max_chars=6)
    featurizer = CountingFeaturizer(encoder)
    cache = FeatureCache(encoder)
    examples = make_examples()
    first = epoch(cache, featurizer, examples)
    assert featurizer.computed == 10 and cache.stats.misses == 10
    second = epoch(cache, featurizer, examples)
    assert featurizer.computed == 10 and cache.stats.hits == 10
    assert np.array_equal(first, second)
    assert np.array_equal(first, encoder.encode_tokens_batch([ex.tokens for ex in examples]))
    assert "hit rate 50.0%" in cache.stats.summary()
    # Stored arrays cannot be changed through what the cache hands out.
    with pytest.raises(ValueError):
        cache.get(example_key(examples[0]))[0, 0] = 1


def test_persisted_cache_is_reused_and_invalidated_by_config(tmp_path):
    encoder = TextEncoder(max_tokens=8, max_chars=6)
    examples = make_examples()
    cache = FeatureCache(encoder, directory=tmp_path)
    assert cache.load() == 0
    epoch(cache, CountingFeaturizer(encoder), examples)
    folder = cache.save()
    assert folder.startswith(str(tmp_path / "feature_cache"))

    again = FeatureCache(encoder, directory=tmp_path)
    assert again.load() == 10
    featurizer = CountingFeaturizer(encoder)
    out = epoch(again, featurizer, examples)
    assert featurizer.computed == 0
    assert np.array_equal(out, encoder.encode_tokens_batch([ex.tokens for ex in examples]))

    # Another config: nothing is reused, and the old folder can be pruned.
    other = TextEncoder(max_tokens=8, max_chars=7)
    stale = FeatureCache(other, directory=tmp_path)
    assert stale.load() == 0 and stale.path != cache.path
    featurizer = CountingFeaturizer(other)
    assert epoch(stale, featurizer, examples).shape == (10, 8, 7)
    assert featurizer.computed == 10
    stale.save()
    assert stale.prune_stale() == [cache.path]
    assert FeatureCache(other, directory=tmp_path).load() == 10


def test_set_config_empties_on_change():
    cache = FeatureCache({"a": 1})
    cache.put("k", np.zeros(3))
    assert not cache.set_config({"a": 1}) and len(cache) == 1
    assert cache.set_config({"a": 2}) and len(cache) == 0
    assert FeatureCache({"b": 1, "a": 2}).fingerprint == FeatureCache({"a": 2, "b": 1}).fingerprint


def test_keys_combine_id_and_content():
    a, b = make_examples(2)
    assert example_key(a) != example_key(b)
    same_id = Example(**dict(a.to_dict(), tokens=["other"], offsets=[]))
    assert example_key(same_id) != example_key(a)  # ids repeat across files
    other_lang = Example(**dict(a.to_dict(), language="de", offsets=[]))
    assert example_key(other_lang) != example_key(a)
    assert example_key(a) == example_key(id=a.id, tokens=a.tokens, language="en")
    assert example_key(id=None, tokens=["\ud800"]).startswith("#")


def test_dict_and_ragged_features_persist(tmp_path):
    cache = FeatureCache("fp", directory=tmp_path)
    cache.put("a", {"x": np.arange(3), "y": np.ones((2, 2), np.float32)})
    cache.put("b", {"x": np.arange(5), "y": np.zeros((2, 2), np.float32)})
    cache.save()
    loaded = FeatureCache("fp", directory=tmp_path)
    assert loaded.load() == 2
    assert loaded.get("b")["x"].tolist() == [0, 1, 2, 3, 4]
    assert loaded.get("a")["y"].dtype == np.float32
    with pytest.raises(TypeError):
        loaded.put("c", np.zeros(3))  # every entry has the same fields
    stacked = loaded.get_or_compute(["a", "a"], lambda idx: pytest.fail("all cached"))
    assert stacked["y"].shape == (2, 2, 2) and stacked["x"].shape == (2, 3)


def test_memory_limit_admits_nothing_more():
    cache = FeatureCache("fp", max_bytes=100)
    assert cache.put("a", np.zeros(10, np.int32))  # 40 bytes
    assert cache.put("b", np.zeros(10, np.int32))
    assert not cache.put("c", np.zeros(10, np.int32))
    assert cache.stats.rejected == 1 and len(cache) == 2 and cache.nbytes == 80
    calls = []
    out = cache.get_or_compute(["a", "c"], lambda idx: calls.append(idx) or np.ones((1, 10)))
    assert calls == [[1]] and out[1].tolist() == [1] * 10


def test_errors():
    cache = FeatureCache("fp")
    with pytest.raises(ValueError):
        cache.save()
    with pytest.raises(ValueError):
        cache.get_or_compute([], lambda idx: [])
    with pytest.raises(ValueError):
        cache.get_or_compute(["a", "b"], lambda idx: np.zeros((1, 2)))
    with pytest.raises(TypeError):
        cache.put("o", np.array([object()]))
