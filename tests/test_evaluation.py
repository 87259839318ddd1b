"""Tests for prado_tiny.evaluation: decoding rules and the predictions file."""
import json

import numpy as np
import pytest

from prado_tiny import evaluation as E
from prado_tiny.data.example import Example
from prado_tiny.data.vocab import LabelVocab


@pytest.fixture(scope="module")
def vocab():
    # intents: <unk>, alarm, music, weather; slots: O, <unk>, B-time, I-time
    return LabelVocab(["weather", "alarm", "music"], ["B-time"] + ["I-time"])


def test_reserved_ids(vocab):
    assert vocab.decode_intent(E.UNK_INTENT) == "<unk>"
    assert vocab.decode_slots([E.UNK_SLOT]) == ["<unk>"]


def test_decode_intent_joint_never_unk(vocab):
    logits = np.array([9.0, 1.0, 3.0, 2.0])  # <unk> highest
    label, score = E.decode_intent(logits, vocab)
    assert label == "music"
    p = np.exp([1.0, 3.0, 2.0]) / np.exp([1.0, 3.0, 2.0]).sum()  # softmax without <unk>
    assert score == pytest.approx(p[1])
    assert logits[0] == 9.0  # the caller's array is not changed
    label, score = E.decode_intent(np.array([0.0, 5.0, 1.0, 1.0], np.float32), vocab)
    assert label == "alarm" and 0.5 < score < 1.0


def test_decode_intent_multi_label_threshold(vocab):
    logits = np.array([10.0, 2.0, -3.0, 1.0])  # sigmoid: unk .99995, alarm .88, music .05, weather .73
    label, score = E.decode_intent(logits, vocab, "multi_label")
    assert label == "alarm#weather"
    sig = 1 / (1 + np.exp(-np.array([2.0, 1.0])))
    assert score == pytest.approx(sig.prod())
    label, _ = E.decode_intent(logits, vocab, "multi_label", threshold=0.8)
    assert label == "alarm"
    label, _ = E.decode_intent(logits, vocab, "multi_label", threshold=0.01)
    assert label == "alarm#music#weather"


def test_decode_intent_multi_label_fallback(vocab):
    logits = np.array([10.0, -4.0, -1.0, -2.0])  # only <unk> passes 0.5
    label, score = E.decode_intent(logits, vocab, "multi_label")
    assert label == "music"
    assert score == pytest.approx(1 / (1 + np.exp(1.0)))


def test_decode_slots_never_unk_and_pads_with_o(vocab):
    logits = np.array([[0.0, 9.0, 1.0, 0.0],    # <unk> highest, then B-time
                       [5.0, 0.0, 1.0, 0.0],    # O
                       [0.0, 9.0, 0.0, 2.0],    # <unk> highest, then I-time
                       [0.0, 0.0, 0.0, 99.0]])  # beyond `length`: ignored
    tags, scores = E.decode_slots(logits, 3, 5, vocab)
    assert tags == ["B-time", "O", "I-time", "O", "O"]
    assert len(scores) == 5 and scores[3:] == [1.0, 1.0]
    row = np.exp([0.0, 1.0, 0.0]) / np.exp([0.0, 1.0, 0.0]).sum()
    assert scores[0] == pytest.approx(row[1])
    assert "<unk>" not in tags


def test_decode_slots_no_tokens_encoded(vocab):
    tags, scores = E.decode_slots(np.zeros((0, 4)), 0, 3, vocab)
    assert tags == ["O", "O", "O"] and scores == [1.0, 1.0, 1.0]
    assert E.decode_slots(np.zeros((0, 4)), 0, 0, vocab) == ([], [])


def test_decode_slots_unk_everywhere(vocab):
    logits = np.tile([0.0, 50.0, -1.0, -2.0], (4, 1))
    tags, _ = E.decode_slots(logits, 4, 4, vocab)
    assert tags == ["O"] * 4


def example(i, tokens, intent="alarm", utterance=None):
    return Example(id=f"x{i}", language="de", utterance=utterance or " ".join(tokens),
                   tokens=tokens, offsets=[], intent=intent, slots=["O"] * len(tokens),
                   source=f"f:{i}")


def test_predictions_records(vocab):
    exs = [example(0, ["wecker", "um", "7"]), example(1, ["musik", "bitte", "jetzt", "an"],
                                                      intent="music")]
    intent_logits = [np.array([0.0, 3.0, 0.0, 0.0]), np.array([0.0, 0.0, 3.0, 0.0])]
    slot_logits = [np.array([[3.0, 0, 0, 0], [3.0, 0, 0, 0], [0, 0, 3.0, 0]]),
                   np.array([[3.0, 0, 0, 0], [0, 0, 3.0, 0]])]  # only 2 of 4 tokens encoded
    preds = E.predictions(exs, intent_logits, slot_logits, vocab)
    assert [p["id"] for p in preds] == ["x0", "x1"]
    assert preds[0]["intent"] == "alarm" and preds[1]["intent"] == "music"
    assert preds[0]["slots"] == ["O", "O", "B-time"]
    assert preds[1]["slots"] == ["O", "B-time", "O", "O"]
    assert preds[1]["gold_intent"] == "music" and preds[1]["tokens"] == exs[1].tokens


def test_write_predictions(tmp_path):
    records = [{"id": str(i), "utterance": u, "intent": "x"} for i, u in
               enumerate(["grüße aus köln", "ตั้งนาฬิกาปลุก", "नमस्ते", "plain"])]
    path = tmp_path / "new" / "dir" / "preds.jsonl"
    n = E.write_predictions(str(path), (r for r in records))
    assert n == 4
    text = path.read_text(encoding="utf-8")
    assert "grüße aus köln" in text and "ตั้งนาฬิกาปลุก" in text and "\\u" not in text
    lines = text.splitlines()
    assert len(lines) == 4 and text.endswith("\n")
    assert [json.loads(line) for line in lines] == records
    assert not list(path.parent.glob("*.tmp"))
    # Overwrites, and an empty iterable gives an empty file.
    assert E.write_predictions(str(path), []) == 0
    assert path.read_text(encoding="utf-8") == ""
