"""Tests for prado_tiny.data.parse: the tree, its strict parser, canonical strings, flat frames."""
import pytest

from prado_tiny.data.parse import (Intent, ParseError, Slot, canonical, flat_frame, flat_to_bio,
                                   parse_tree, to_string)
from prado_tiny.data.tokenizer import whitespace_tokenize

NESTED = ("[IN:CREATE_REMINDER [SL:TODO [IN:GET_TODO [SL:TODO [IN:CREATE_CALL [SL:CONTACT "
          "[IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION dad ] ] ] ] ] "
          "[SL:DATE_TIME tomorrow ] ] ] [SL:PERSON_REMINDED me ] [SL:DATE_TIME around 3 PM ] ]")


def test_nested_round_trip_and_tree():
    tree = parse_tree(NESTED)
    assert to_string(tree) == NESTED == canonical(NESTED) == str(tree)
    assert isinstance(tree, Intent) and tree.label == "CREATE_REMINDER" and tree.tag == "IN:CREATE_REMINDER"
    todo = tree.children[0]
    assert isinstance(todo, Slot) and todo.tag == "SL:TODO"
    assert todo.words() == ["my", "dad", "tomorrow"]
    assert isinstance(todo.children[0], Intent)
    assert tree == parse_tree(NESTED)  # structural equality
    assert Intent("A", ["x"]) != Slot("A", ["x"])


def test_flat_frame_of_a_nested_slot():
    tree = "[IN:CREATE_CALL [SL:CONTACT [IN:GET_CONTACT [SL:CONTACT_RELATED my ] [SL:TYPE_RELATION mom ] ] ] ]"
    assert flat_frame(tree) == ("CREATE_CALL", [("CONTACT", "my mom")])
    assert flat_frame(parse_tree(NESTED)) == (
        "CREATE_REMINDER", [("TODO", "my dad tomorrow"), ("PERSON_REMINDED", "me"), ("DATE_TIME", "around 3 PM")])
    assert flat_frame("[IN:SET_UNAVAILABLE ]") == ("SET_UNAVAILABLE", [])


def test_massive_glued_brackets():
    sp = "[IN:alarm_set [SL:date freitag] [SL:time neun uhr] ]"
    assert canonical(sp) == "[IN:alarm_set [SL:date freitag ] [SL:time neun uhr ] ]"
    assert flat_frame(sp) == ("alarm_set", [("date", "freitag"), ("time", "neun uhr")])
    assert canonical("[IN:x [SL:time nine am]]") == "[IN:x [SL:time nine am ] ]"


def test_canonical_normalises_spacing_but_keeps_order():
    assert canonical("  [IN:X\t[SL:Y  a   b ]\n]  ") == "[IN:X [SL:Y a b ] ]"
    assert canonical("[ IN:X [SL:Y a ] ]") == "[IN:X [SL:Y a ] ]"
    swapped = "[IN:X [SL:B b ] [SL:A a ] ]"
    assert canonical(swapped) != canonical("[IN:X [SL:A a ] [SL:B b ] ]")
    # Words outside slots (MTOP's decoupled parses have none, TOP's do) are kept in place.
    assert canonical("[IN:X call [SL:A mom ] now ]") == "[IN:X call [SL:A mom ] now ]"


@pytest.mark.parametrize("text, message", [
    ("", "empty parse"),
    ("   ", "empty parse"),
    ("[IN:X [SL:Y a ]", "unclosed"),
    ("[IN:X ] ]", "unmatched"),
    ("[ ]", "empty label"),
    ("[]", "empty label"),
    ("[IN: ]", "empty IN name"),
    ("[XX:Y a ]", "not IN:NAME"),
    ("[GET_WEATHER ]", "not IN:NAME"),
    ("hello [IN:X ]", "outside the root"),
    ("[IN:X ] bye", "outside the root"),
    ("[IN:X ] [IN:Y ]", "second root"),
    ("[SL:X a ]", "root must be an intent"),
    ("[IN:X [IN:Y ] ]", "directly inside"),
    ("[IN:X [SL:Y [SL:Z a ] ] ]", "directly inside"),
    ("[IN:X [SL:Y ] ]", "empty slot"),
    ("words only", "outside the root"),
])
def test_malformed_parses(text, message):
    with pytest.raises(ParseError, match=message):
        parse_tree(text)
    with pytest.raises(ParseError):
        canonical(text)


def test_flat_to_bio_places_slots_on_whole_words():
    # `me` must not be found inside `messaged`, nor a casefolded `I` inside `reminder`.
    utt = "Have Janie and Kyle Coleman messaged me today"
    tokens, tags, problems = flat_to_bio(utt, [("SENDER", "Janie"), ("SENDER", "Kyle Coleman"),
                                               ("RECIPIENT", "me"), ("DATE_TIME", "today")])
    assert problems == []
    assert [t for t, _, _ in tokens] == utt.split()
    assert tags == ["O", "B-SENDER", "O", "B-SENDER", "I-SENDER", "O", "B-RECIPIENT", "B-DATE_TIME"]
    _, tags, _ = flat_to_bio("Set a reminder I have an interview", [("PERSON_REMINDED", "I")])
    assert tags == ["O", "O", "O", "B-PERSON_REMINDED", "O", "O", "O"]


def test_flat_to_bio_prefers_whole_tokens():
    utt = "définir l'amour sans invoquer le terme amour"
    tokens, tags, problems = flat_to_bio(utt, [("definition_word", "amour")], whitespace_tokenize(utt))
    assert problems == [] and [t for t, _, _ in tokens] == utt.split()
    assert tags[-1] == "B-definition_word" and tags.count("O") == 6


def test_flat_to_bio_thai_and_token_splits():
    utt = "ตั้งเตือนพรุ่งนี้"
    tokens, tags, problems = flat_to_bio(utt, [("DATE_TIME", "พรุ่ง นี้")])
    assert problems == []
    placed = "".join(t for (t, _, _), tag in zip(tokens, tags) if tag != "O")
    assert placed == "พรุ่งนี้" and tags[-1].startswith("I-")
    # A slot boundary inside a token splits it, so that offsets still cover whole tokens.
    tokens, tags, _ = flat_to_bio("at 5pmish", [("time", "5pm")])
    assert [t for t, _, _ in tokens] == ["at", "5pm", "ish"] and tags == ["O", "B-time", "O"]


def test_flat_to_bio_longest_slot_first_when_text_is_taken():
    # PERSON_REMINDED `my` placed first would take the `my` that TODO `my class` needs.
    utt = "I don't want to oversleep for my class, so can you set my reminder for 9 am?"
    slots = [("PERSON_REMINDED", "my"), ("TODO", "my class"), ("DATE_TIME", "for 9 am")]
    tokens, tags, problems = flat_to_bio(utt, slots)
    assert problems == []
    words = [t for t, _, _ in tokens]
    assert tags[words.index("class") - 1:words.index("class") + 1] == ["B-TODO", "I-TODO"]
    assert tags[words.index("reminder") - 1] == "B-PERSON_REMINDED"


def test_flat_to_bio_reports_what_cannot_be_placed():
    tokens, tags, problems = flat_to_bio("call mom", [("CONTACT", "dad")])
    assert tags == ["O", "O"] and problems[0].startswith("slot_text_not_in_utterance: CONTACT")
    # A slot lying inside another (MTOP flat parses of translated rows do this).
    _, tags, problems = flat_to_bio("remind me to call Ann tonight",
                                    [("TODO", "call Ann tonight"), ("DATE_TIME", "tonight")])
    assert tags == ["O", "O", "O", "B-TODO", "I-TODO", "I-TODO"]
    assert len(problems) == 1 and problems[0].startswith("overlapping_slots: DATE_TIME 'tonight'")
    # The same slot given more often than its text occurs.
    _, tags, problems = flat_to_bio("start a timer", [("METHOD_TIMER", "timer")] * 2)
    assert tags == ["O", "O", "B-METHOD_TIMER"]
    assert len(problems) == 1 and problems[0].startswith("duplicate_slot: METHOD_TIMER")


def test_every_mtop_parse_round_trips(datasets_dir):
    """The canonical spelling is MTOP's own: every decoupled parse of the English eval file is
    already canonical, and its flat column parses too."""
    path = datasets_dir / "mtop" / "en" / "eval.txt"
    n = 0
    for line in path.read_text(encoding="utf-8").splitlines():
        cols = line.split("\t")
        assert canonical(cols[2]) == cols[2]
        assert canonical(cols[1]) == cols[1]
        n += 1
    assert n == 2235
