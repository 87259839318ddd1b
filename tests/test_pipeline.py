"""The tf.data input pipeline: shapes, padding and truncation counts, labels, shuffling and the cache."""
import logging

import numpy as np
import pytest
import tensorflow as tf

from prado_tiny.data import demo
from prado_tiny.data.example import Example, ReadReport
from prado_tiny.data.pipeline import (CodepointFeaturizer, InputPipeline, TOKEN_MASK, make_dataset)
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab

MAX_LEN = 10


class CountingFeaturizer(CodepointFeaturizer):
    """The default featurizer, counting its calls."""

    def __init__(self, max_seq_len=MAX_LEN):
        super().__init__(TextEncoder(max_tokens=max_seq_len, max_chars=12))
        self.calls = 0

    def __call__(self, tokens):
        self.calls += 1
        return super().__call__(tokens)


@pytest.fixture(scope="module")
def examples():
    # English is short, Thai long (one token per grapheme cluster): some exceed MAX_LEN.
    return (list(demo.read(split="dev", languages="en"))[:40]
            + list(demo.read(split="dev", languages="th"))[:30])


@pytest.fixture(scope="module")
def vocab():
    return LabelVocab.from_examples(demo.read(split="train"))


def _epoch(ds):
    return [tf.nest.map_structure(lambda t: t.numpy(), batch) for batch in ds]


def _concat(batches, i, key):
    return np.concatenate([b[i][key] for b in batches])


def test_shapes_padding_labels_and_truncation(examples, vocab, caplog):
    report = ReadReport()
    pipe = InputPipeline(vocab, CountingFeaturizer(), max_seq_len=MAX_LEN)
    with caplog.at_level(logging.WARNING, logger="prado_tiny.data.pipeline"):
        ds = pipe.dataset(examples, batch_size=16, report=report)
    long = [e for e in examples if len(e.tokens) > MAX_LEN]
    assert long, "the fixture must hold examples longer than MAX_LEN"
    # Counted before any iteration, and logged.
    assert pipe.stats.examples == len(examples)
    assert pipe.stats.examples_truncated == len(long) == report.truncated
    assert pipe.stats.tokens_dropped == sum(len(e.tokens) - MAX_LEN for e in long)
    assert pipe.stats.slot_tokens_dropped == sum(t != "O" for e in long for t in e.slots[MAX_LEN:])
    assert any("longer than max_seq_len=10" in r.getMessage() for r in caplog.records)

    batches = _epoch(ds)
    assert [b[0]["codepoints"].shape for b in batches] == [(16, MAX_LEN, 12)] * 4 + [(6, MAX_LEN, 12)]
    assert set(batches[0][0]) == {"codepoints", TOKEN_MASK} and set(batches[0][1]) == {"intent", "slots"}
    assert batches[0][0]["codepoints"].dtype == np.int32 and batches[0][1]["slots"].dtype == np.int32
    mask, slots = _concat(batches, 0, TOKEN_MASK), _concat(batches, 1, "slots")
    codepoints, intents = _concat(batches, 0, "codepoints"), _concat(batches, 1, "intent")
    for i, ex in enumerate(examples):  # no shuffle: order kept
        n = min(len(ex.tokens), MAX_LEN)
        assert mask[i].tolist() == [1] * n + [0] * (MAX_LEN - n)
        assert slots[i].tolist() == vocab.encode_slots(ex.slots[:n]) + [-1] * (MAX_LEN - n)
        assert intents[i] == vocab.encode_intent(ex.intent)
        assert TextEncoder.decode_tokens(codepoints[i]) == [t.lower() for t in ex.tokens[:n]]
        assert (codepoints[i][n:] == 0).all()


def test_second_epoch_does_no_featurization_with_memory_cache(examples, vocab):
    feat = CountingFeaturizer()
    ds = make_dataset(examples, vocab, feat, max_seq_len=MAX_LEN, batch_size=8, shuffle=True, seed=3)
    first, second = _epoch(ds), _epoch(ds)
    assert feat.calls == len(examples)  # once per example, over two epochs
    # Reshuffled each epoch, same multiset of examples.
    a, b = _concat(first, 0, "codepoints"), _concat(second, 0, "codepoints")
    assert not np.array_equal(a, b)
    assert sorted(map(bytes, a)) == sorted(map(bytes, b))


def test_without_cache_every_epoch_featurizes(examples, vocab):
    feat = CountingFeaturizer()
    ds = make_dataset(examples, vocab, feat, max_seq_len=MAX_LEN, batch_size=32, cache=None)
    _epoch(ds), _epoch(ds)
    assert feat.calls == 2 * len(examples)


def test_file_cache_is_reused_across_pipelines_and_keyed_by_config(examples, vocab, tmp_path):
    feat = CountingFeaturizer()
    ds = make_dataset(examples, vocab, feat, max_seq_len=MAX_LEN, batch_size=32, cache=str(tmp_path))
    first = _epoch(ds)
    _epoch(ds)
    assert feat.calls == len(examples)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files and all(name.startswith("features-") for name in files)

    # A new pipeline (a new run) with the same featurizer config reads the files: featurizes once,
    # for the element spec only.
    feat2 = CountingFeaturizer()
    again = _epoch(make_dataset(examples, vocab, feat2, max_seq_len=MAX_LEN, batch_size=32,
                                cache=str(tmp_path)))
    assert feat2.calls == 1
    for x, y in zip(first, again):
        tf.nest.map_structure(np.testing.assert_array_equal, x, y)

    # Another max_seq_len is another cache file.
    _epoch(make_dataset(examples, vocab, CountingFeaturizer(12), max_seq_len=12, cache=str(tmp_path)))
    assert len({p.name.split(".")[0] for p in tmp_path.iterdir()}) == 2


def test_shuffle_is_seeded(examples, vocab):
    def order(seed):
        ds = make_dataset(examples, vocab, max_seq_len=MAX_LEN, batch_size=70, shuffle=True, seed=seed)
        return [tuple(_concat(_epoch(ds), 1, "intent")) for _ in range(2)]

    assert order(0) == order(0)
    assert order(0) != order(1)


def test_per_token_features_are_padded_and_bad_shapes_rejected(vocab):
    ex = Example(id="1", language="en", utterance="wake me at 7", tokens=["wake", "me", "at", "7"],
                 offsets=[(0, 4), (5, 7), (8, 10), (11, 12)], intent="CREATE_ALARM",
                 slots=["O", "O", "B-DATE_TIME", "I-DATE_TIME"])

    def lengths(tokens):
        return {"lengths": np.array([len(t) for t in tokens], np.int32)}

    feats, labels = InputPipeline(vocab, lengths, max_seq_len=6).encode_all([ex, ex])
    assert feats["lengths"].tolist() == [[4, 2, 2, 1, 0, 0]] * 2
    assert feats[TOKEN_MASK].tolist() == [[1, 1, 1, 1, 0, 0]] * 2
    assert labels["intent"].shape == (2,) and labels["slots"].shape == (2, 6)

    with pytest.raises(ValueError, match="first axis 3"):
        InputPipeline(vocab, lambda t: {"x": np.zeros([3])}, max_seq_len=6).encode_all([ex])
    with pytest.raises(ValueError, match="max_tokens=4"):
        InputPipeline(vocab, CodepointFeaturizer(TextEncoder(max_tokens=4)), max_seq_len=6)


def test_unknown_labels_sample_weights_and_static_batches(examples, vocab, caplog):
    odd = Example(id="x", language="en", utterance="hello there", tokens=["hello", "there"],
                  offsets=[(0, 5), (6, 11)], intent="GREET", slots=["B-NAME", "O"])
    pipe = InputPipeline(vocab, max_seq_len=MAX_LEN, ignore_label=0)
    with caplog.at_level(logging.WARNING, logger="prado_tiny.data.pipeline"):
        ds = pipe.dataset(examples[:9] + [odd], batch_size=4, drop_remainder=True, sample_weights=True)
    assert pipe.stats.unknown_intents == {"GREET": 1} and pipe.stats.unknown_slot_tags == {"B-NAME": 1}
    assert any("not in the vocabulary" in r.getMessage() for r in caplog.records)
    assert ds.element_spec[0]["codepoints"].shape.as_list() == [4, MAX_LEN, 24]
    batches = _epoch(ds)
    assert len(batches) == 2  # 10 examples, batches of 4, remainder dropped
    features, labels, weights = batches[0]
    np.testing.assert_array_equal(weights["slots"], features[TOKEN_MASK].astype(np.float32))
    assert labels["slots"].min() >= 0  # ignore_label=0: padding is a valid id, weighted out


def test_empty_input_is_an_error(vocab):
    with pytest.raises(ValueError, match="no examples"):
        make_dataset([], vocab)
