"""Tests for prado_tiny.data.tokenizer."""
import json

from hypothesis import given, settings, strategies as st

from prado_tiny.data.tokenizer import tokenize, whitespace_tokenize


def words(text):
    return [t for t, _, _ in tokenize(text)]


def test_mtop_english_rules():
    assert words("What's the work address with zipcode where James work?") == [
        "What", "'s", "the", "work", "address", "with", "zipcode", "where", "James", "work", "?"]
    assert words("don't set it for 7pm, 6.00pm or the 21st p.m.") == [
        "don't", "set", "it", "for", "7", "pm", ",", "6.00pm", "or", "the", "21st", "p.m", "."]
    assert words("music from the 80's") == ["music", "from", "the", "80", "'", "s"]
    assert words("e-mail Anna") == ["e", "-", "mail", "Anna"]


def test_unsegmented_scripts_give_grapheme_clusters():
    # Thai: a base consonant keeps its vowel and tone marks.
    assert words("ตั้งเวลา") == ["ตั้", "ง", "เ", "ว", "ล", "า"]
    assert words("天气 好") == ["天", "气", "好"]
    # Devanagari is written with spaces: words stay whole, with their combining marks.
    assert words("मुझे सात बजे") == ["मुझे", "सात", "बजे"]


def test_emoji_sequences_stay_whole():
    assert words("ok 👍🏽!") == ["ok", "👍🏽", "!"]


def test_reproduces_official_mtop_tokens(datasets_dir):
    path = datasets_dir / "mtop_official" / "en" / "eval.txt"
    rows = same = 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            cols = line.rstrip("\n").split("\t")
            rows += 1
            same += words(cols[3]) == json.loads(cols[7])["tokens"]
    assert rows == 2235
    assert same == rows  # measured: every official English eval row


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60))
def test_offsets_cover_tokens_and_skip_only_whitespace(text):
    toks = tokenize(text)
    prev_end = 0
    for tok, start, end in toks:
        assert tok and text[start:end] == tok
        assert not any(c.isspace() for c in tok)
        assert start >= prev_end
        # Characters between tokens are whitespace only: tokenization loses no text.
        assert text[prev_end:start].strip() == ""
        prev_end = end
    assert text[prev_end:].strip() == ""


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Zs", "Zl", "Zp", "Cc")),
                        min_size=1, max_size=8), max_size=10))
def test_whitespace_tokenize_round_trips(parts):
    parts = [p for p in parts if p.split() == [p]]
    text = "  ".join(parts)
    assert [t for t, _, _ in whitespace_tokenize(text)] == parts
