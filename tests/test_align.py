"""Tests for prado_tiny.data.align."""
import pytest

from prado_tiny.data.align import (AlignmentError, bad_bio_tag, bio_to_spans, locate_slots, place_spans,
                                   spans_to_bio,
                                   split_at_boundaries)
from prado_tiny.data.tokenizer import tokenize


def test_bio_chunks_follow_conlleval():
    assert bio_to_spans(["B-a", "I-a", "O"]) == [("a", 0, 2)]
    # I- after O starts a chunk; a type change inside I- tags starts another.
    assert bio_to_spans(["O", "I-a", "I-a", "I-b"]) == [("a", 1, 3), ("b", 3, 4)]
    # B-X B-X is two chunks; a chunk may end the sentence.
    assert bio_to_spans(["B-x", "B-x", "O", "B-y", "I-y"]) == [("x", 0, 1), ("x", 1, 2), ("y", 3, 5)]
    assert bio_to_spans(["B-a", "I-b"]) == [("a", 0, 1), ("b", 1, 2)]
    assert bio_to_spans([]) == []


def test_spans_to_bio_and_back():
    text = "wake me up at nine am on friday"
    toks = tokenize(text)
    spans = [("time", 14, 21), ("date", 25, 31)]
    tags = spans_to_bio(toks, spans)
    assert tags == ["O", "O", "O", "O", "B-time", "I-time", "O", "B-date"]
    assert bio_to_spans(tags) == [("time", 4, 6), ("date", 7, 8)]


def test_span_inside_a_token_splits_it():
    text = "at 5pmish"
    spans = [("time", 3, 6)]
    toks = split_at_boundaries(text, tokenize(text), spans)
    assert [t for t, _, _ in toks] == ["at", "5pm", "ish"]
    assert spans_to_bio(toks, spans) == ["O", "B-time", "O"]


def test_overlapping_and_empty_spans_are_errors():
    toks = tokenize("call mom now")
    with pytest.raises(AlignmentError, match="overlapping"):
        spans_to_bio(toks, [("a", 0, 8), ("b", 5, 8)])
    with pytest.raises(AlignmentError, match="covers_no_token"):
        spans_to_bio(toks, [("a", 4, 5)])


def test_locate_slots_thai_and_repeats():
    # Thai MTOP: unsegmented utterance, space-tokenised slot text.
    utt = "ส่งข้อความสุขสันต์วันปีใหม่ให้ Steve และ Steve"
    spans, problems = locate_slots(utt, [("CONTENT", "สุขสันต์ วัน ปี ใหม่"), ("R", "Steve"), ("R", "Steve")])
    assert problems == []
    assert [utt[s:e] for _, s, e in spans] == ["สุขสันต์วันปีใหม่", "Steve", "Steve"]
    assert spans[1][1] != spans[2][1]


def test_locate_slots_reports_missing_text():
    spans, problems = locate_slots("call mom", [("CONTACT", "dad")])
    assert spans == [] and problems[0].startswith("slot_text_not_in_utterance")


def test_place_spans_keeps_the_good_spans():
    toks = tokenize("call mom now")
    tags, problems = place_spans(toks, [("a", 5, 8), ("b", 5, 12), ("c", 9, 12)])
    assert tags == ["O", "B-a", "B-c"]
    assert len(problems) == 1 and problems[0].startswith("overlapping_slots: b")


def test_bad_bio_tag():
    assert bad_bio_tag(["O", "B-x", "I-x"]) is None
    assert "tag 2" in bad_bio_tag(["O", "X-x"])
    assert bad_bio_tag(["B-"]) is not None
