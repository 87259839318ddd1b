"""Tests for prado_tiny.data.token_features: ragged per-token features and labels, padded batches."""
import dataclasses

import numpy as np
import pytest

from prado_tiny.data import demo
from prado_tiny.data import token_features as TF
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab
from prado_tiny.layers.minhash_projection import MinHashFeaturizer

T = 8


@pytest.fixture(scope="module")
def examples():
    # Every 10th development example: all four languages, short and long utterances.
    exs = list(demo.read(split="dev"))[::10]
    assert len(exs) == 50
    assert any(len(ex.tokens) > T for ex in exs) and any(len(ex.tokens) < T for ex in exs)
    return exs


@pytest.fixture(scope="module")
def vocab(examples):
    return LabelVocab.from_examples(examples)


def featurizer():
    return MinHashFeaturizer(num_hashes=8, bloom_size=64, window=1).buckets


def encoder():
    return TextEncoder(max_tokens=T, max_chars=8)


@pytest.fixture(scope="module")
def features(examples, vocab):
    return TF.featurize(examples, encoder(), featurizer(), vocab, T, subwords=False)


def test_lengths_and_layout(examples, features):
    fs = features
    assert len(fs) == len(examples) and fs.examples == examples
    np.testing.assert_array_equal(fs.lengths, [min(len(ex.tokens), T) for ex in examples])
    assert fs.values.shape == (fs.lengths.sum(), 8) and fs.values.dtype == np.int16
    np.testing.assert_array_equal(fs.starts, np.r_[0, np.cumsum(fs.lengths)[:-1]])
    assert fs.slots.shape == (fs.lengths.sum(),)


def test_values_are_each_examples_own_buckets(examples, features):
    fs = features
    feat, enc = featurizer(), encoder()
    for i in (0, 7, 23, 49):
        ex = examples[i]
        buckets, nonempty = feat(enc.encode_tokens_batch([ex.tokens[:T]]))
        n = fs.lengths[i]
        assert nonempty[0, :n].all()
        np.testing.assert_array_equal(fs.values[fs.starts[i]:fs.starts[i] + n], buckets[0, :n])


def test_batch_pads_to_longest(examples, features, vocab):
    fs = features
    index = [3, 0, 17, 40]
    x, y = fs.batch(index)
    lengths = fs.lengths[index]
    t = lengths.max()
    assert x["buckets"].shape == (4, t, 8) and x["token_mask"].shape == (4, t)
    np.testing.assert_array_equal(x["token_mask"], np.arange(t)[None, :] < lengths[:, None])
    assert x["token_mask"].dtype == np.int32
    for row, i in enumerate(index):
        n = lengths[row]
        ex = examples[i]
        np.testing.assert_array_equal(x["buckets"][row, :n], fs.values[fs.starts[i]:fs.starts[i] + n])
        assert not x["buckets"][row, n:].any()
        assert y["slots"][row, :n].tolist() == vocab.encode_slots(ex.slots[:T])
        assert not y["slots"][row, n:].any()
        assert y["intent"][row] == vocab.encode_intent(ex.intent)
    np.testing.assert_array_equal(y["slot_weight"], 1.0)


def test_batch_of_short_examples_is_short(features):
    fs = features
    short = np.flatnonzero(fs.lengths < T)[:5]
    x, y = fs.batch(short)
    assert x["buckets"].shape[1] == fs.lengths[short].max() < T
    assert y["slots"].shape == x["token_mask"].shape


def test_slot_labels_line_up_with_tokens(examples, features, vocab):
    fs = features
    for i, ex in enumerate(examples):
        ids = fs.slots[fs.starts[i]:fs.starts[i] + fs.lengths[i]]
        assert ids.tolist() == vocab.encode_slots(ex.slots[:T])
        assert vocab.decode_slots(ids.tolist()) == ex.slots[:T]
    assert (fs.slots > 1).any()  # real slot tags, not only O


def test_unaligned_examples_get_no_slot_weight(examples, vocab):
    exs = [dataclasses.replace(ex, unaligned="span: not on token boundaries") if i % 3 == 0 else ex
           for i, ex in enumerate(examples[:12])]
    fs = TF.featurize(exs, encoder(), featurizer(), vocab, T, subwords=False)
    np.testing.assert_array_equal(fs.slot_weight, [0.0 if i % 3 == 0 else 1.0 for i in range(12)])
    _, y = fs.batch([0, 1, 3])
    np.testing.assert_array_equal(y["slot_weight"], [0.0, 1.0, 0.0])


def test_multi_label_rows(examples, vocab):
    intents = sorted({ex.intent for ex in examples})
    a, b = intents[0], intents[1]
    exs = [dataclasses.replace(examples[0], intent=f"{b}#{a}"), examples[1],
           dataclasses.replace(examples[2], intent=f"{a}#{b}#{a}")]
    fs = TF.featurize(exs, encoder(), featurizer(), vocab, T, intent_mode="multi_label",
                      subwords=False)
    assert fs.intents.shape == (3, vocab.num_intents) and fs.intents.dtype == np.float32
    for row in (0, 2):
        assert np.flatnonzero(fs.intents[row]).tolist() == sorted(
            [vocab.encode_intent(a), vocab.encode_intent(b)])
    assert np.flatnonzero(fs.intents[1]).tolist() == [vocab.encode_intent(examples[1].intent)]
    assert set(np.unique(fs.intents)) == {0.0, 1.0}
    _, y = fs.batch([2, 1])
    np.testing.assert_array_equal(y["intent"], fs.intents[[2, 1]])
    assert TF.atomic_intents(f"{b}#{a}") == [a, b]


def test_chunks_and_progress(examples, vocab, features, monkeypatch):
    monkeypatch.setattr(TF, "CHUNK", 16)
    seen = []
    fs = TF.featurize(examples, encoder(), featurizer(), vocab, T, subwords=False,
                      progress=seen.append)
    assert seen == [16, 32, 48, 50]
    np.testing.assert_array_equal(fs.values, features.values)
    np.testing.assert_array_equal(fs.slots, features.slots)


def test_errors(examples, vocab):
    with pytest.raises(ValueError, match="no examples"):
        TF.featurize([], encoder(), featurizer(), vocab, T, subwords=False)
    with pytest.raises(ValueError, match="max_tokens"):
        TF.featurize(examples[:2], TextEncoder(max_tokens=4, max_chars=8), featurizer(), vocab, T,
                     subwords=False)
