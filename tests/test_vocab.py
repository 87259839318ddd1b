"""Tests for prado_tiny.data.vocab."""
import doctest
import json
import pathlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prado_tiny.data.vocab
from prado_tiny.data.example import Example
from prado_tiny.data.vocab import (FILENAME, OUTSIDE, UNK, LabelVocab, Vocabulary, VocabError,
                                   normalize_intent)


def ex(intent, slots, i=0):
    tokens = [f"w{k}" for k in range(len(slots))]
    offsets, pos = [], 0
    for t in tokens:
        offsets.append((pos, pos + len(t)))
        pos += len(t) + 1
    return Example(id=str(i), language="en", utterance=" ".join(tokens), tokens=tokens,
                   offsets=offsets, intent=intent, slots=list(slots))


TRAIN = [
    ex("play_music", ["O", "B-artist", "I-artist"]),
    ex("get_weather", ["O", "B-city"]),
    ex("atis_flight#atis_airfare", ["B-fromloc", "O", "B-toloc"]),
    ex("get_weather", ["B-date", "O"]),
]


def test_docstring_examples():
    assert doctest.testmod(prado_tiny.data.vocab).failed == 0


def test_reserved_entries_first_then_sorted():
    v = LabelVocab.from_examples(TRAIN)
    assert v.intents.labels == [UNK, "atis_airfare#atis_flight", "get_weather", "play_music"]
    assert v.intents.unk_id == 0
    # complete_bio adds I- for types seen only as B- (city, date, fromloc, toloc).
    assert v.slots.labels == [OUTSIDE, UNK, "B-artist", "B-city", "B-date", "B-fromloc", "B-toloc",
                              "I-artist", "I-city", "I-date", "I-fromloc", "I-toloc"]
    assert v.slots.encode("O") == 0 and v.slots.unk_id == 1
    assert (v.num_intents, v.num_slot_tags) == (4, 12)


def test_without_complete_bio_only_seen_tags():
    v = LabelVocab.from_examples(TRAIN, complete_bio=False)
    assert v.slots.labels == [OUTSIDE, UNK, "B-artist", "B-city", "B-date", "B-fromloc", "B-toloc",
                              "I-artist"]


def test_order_does_not_depend_on_the_data_order(tmp_path):
    shuffled = TRAIN[:]
    random.Random(3).shuffle(shuffled)
    a, b = LabelVocab.from_examples(TRAIN), LabelVocab.from_examples(shuffled)
    assert a == b
    # Same bytes on disk: a retrained model's vocabulary file diffs clean.
    saved_a, saved_b = a.save(tmp_path / "a.json"), b.save(tmp_path / "b.json")
    assert pathlib.Path(saved_a).read_bytes() == pathlib.Path(saved_b).read_bytes()


def test_multi_intents_share_one_id_whatever_their_order():
    v = LabelVocab.from_examples(TRAIN)
    assert normalize_intent("b#a#b") == "a#b"
    i = v.encode_intent("atis_flight#atis_airfare")
    assert i == v.encode_intent("atis_airfare#atis_flight") != 0
    assert v.decode_intent(i) == "atis_airfare#atis_flight"
    assert not v.unknown["intents"]


def test_unknown_labels_encode_to_unk_and_are_counted():
    v = LabelVocab.from_examples(TRAIN)
    assert v.encode_intent("set_alarm") == 0
    assert v.encode_intent("set_alarm") == 0
    assert v.encode_intent("atis_flight") == 0  # a part of a multi-intent is not the multi-intent
    assert v.encode_slots(["O", "B-time", "I-artist", "B-time"]) == [0, 1, 7, 1]
    assert v.unknown["intents"] == {"set_alarm": 2, "atis_flight": 1}
    assert v.unknown["slots"] == {"B-time": 2}
    v.slots.unknown.clear()
    assert not v.unknown["slots"]


def test_decode_and_encode_are_inverse():
    v = LabelVocab.from_examples(TRAIN)
    ids = list(range(v.num_slot_tags))
    assert v.encode_slots(v.decode_slots(ids)) == ids
    assert [v.encode_intent(v.decode_intent(i)) for i in range(v.num_intents)] == list(
        range(v.num_intents))
    with pytest.raises(IndexError, match="outside"):
        v.decode_intent(v.num_intents)
    with pytest.raises(IndexError):
        v.decode_slots([-1])


def test_from_mappings_and_empty_training_data():
    v = LabelVocab.from_examples([{"intent": "x", "slots": ["B-a"]}])
    assert v.intents.labels == [UNK, "x"] and v.slots.labels == [OUTSIDE, UNK, "B-a", "I-a"]
    empty = LabelVocab.from_examples([])
    assert empty.intents.labels == [UNK] and empty.slots.labels == [OUTSIDE, UNK]


def test_reserved_labels_in_the_data_are_not_duplicated():
    v = LabelVocab.from_examples([ex(UNK, ["O", UNK])])
    assert v.intents.labels == [UNK] and v.slots.labels == [OUTSIDE, UNK]


def test_config_round_trip():
    v = LabelVocab.from_examples(TRAIN)
    config = v.get_config()
    assert json.loads(json.dumps(config)) == config
    assert LabelVocab.from_config(config) == v
    assert config["intents"][0] == UNK and config["slot_tags"][:2] == [OUTSIDE, UNK]


def test_save_and_load_file_and_folder(tmp_path):
    v = LabelVocab.from_examples(TRAIN + [ex("ถามเวลา", ["B-เวลา"])])
    written = v.save(tmp_path)  # a folder gets label_vocab.json
    assert written == str(tmp_path / FILENAME)
    assert LabelVocab.load(tmp_path) == v
    assert LabelVocab.load(tmp_path / FILENAME) == v
    # Written readable, not \u-escaped.
    assert "ถามเวลา" in (tmp_path / FILENAME).read_text(encoding="utf-8")
    v.save(tmp_path / "other.json")
    assert LabelVocab.load(tmp_path / "other.json") == v
    assert not list(tmp_path.glob("*.tmp"))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(VocabError, match="nowhere.json.*not found"):
        LabelVocab.load(tmp_path / "nowhere.json")
    with pytest.raises(VocabError, match=f"{FILENAME}.*not found"):
        LabelVocab.load(tmp_path)  # a model folder without a vocabulary


@pytest.mark.parametrize("content, message", [
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": [', "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"intents": ["<unk>"], "slot_tags": ["O", "<unk>"]}', "format"),
    ('{"format": "prado_tiny.LabelVocab", "version": 7, "intents": ["<unk>"], '
     '"slot_tags": ["O", "<unk>"]}', "version 7"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "slot_tags": ["O", "<unk>"]}',
     "'intents' must be a list"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": ["a", "<unk>"], '
     '"slot_tags": ["O", "<unk>"]}', "reserved"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": ["<unk>"], '
     '"slot_tags": ["<unk>", "O"]}', "reserved"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": ["<unk>", "b", "a"], '
     '"slot_tags": ["O", "<unk>"]}', "sorted"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": ["<unk>", "a", "a"], '
     '"slot_tags": ["O", "<unk>"]}', "unique"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": ["<unk>", "b#a"], '
     '"slot_tags": ["O", "<unk>"]}', "normalized"),
    ('{"format": "prado_tiny.LabelVocab", "version": 1, "intents": ["<unk>", 3], '
     '"slot_tags": ["O", "<unk>"]}', "list of strings"),
])
def test_corrupt_file_is_a_clear_error_naming_the_path(tmp_path, content, message):
    path = tmp_path / "bad_vocab.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(VocabError, match=message) as info:
        LabelVocab.load(path)
    assert str(path) in str(info.value)


def test_undecodable_file_is_a_clear_error(tmp_path):
    path = tmp_path / "binary.json"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(VocabError, match="binary.json"):
        LabelVocab.load(path)


def test_vocabulary_unk_must_be_reserved():
    with pytest.raises(ValueError, match="reserved"):
        Vocabulary(["a"], reserved=("O",), unk="<unk>")


labels = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(labels, st.lists(labels, max_size=5)), max_size=8))
def test_property_config_round_trip_and_ids(rows):
    v = LabelVocab.from_examples([{"intent": i, "slots": s} for i, s in rows])
    assert LabelVocab.from_config(json.loads(json.dumps(v.get_config()))) == v
    for i in range(v.num_intents):
        assert v.encode_intent(v.decode_intent(i)) == i
    for i in range(v.num_slot_tags):
        assert v.slots.encode(v.decode_slots([i])[0]) == i
    # Every training label is known (only reserved names could map to a reserved id).
    for intent, slots in rows:
        assert v.encode_intent(intent) != 0 or normalize_intent(intent) == UNK
        assert all(i != 1 or t == UNK for t, i in zip(slots, v.encode_slots(slots)))
