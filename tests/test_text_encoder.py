"""Tests for prado_tiny.data.text_encoder: layout, normalisation, truncation reports, configs."""
import hashlib
import itertools
import json
import logging
import os
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prado_tiny.data.text_encoder import REPLACEMENT, EncoderStats, TextEncoder
from prado_tiny.data.tokenizer import tokenize
from prado_tiny.data.wordpiece import WordpieceSplitter

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Any code point, lone surrogates, and hand-picked hard cases: Thai and Devanagari with marks,
# combining sequences, emoji ZWJ sequences and skin tones, astral letters, NUL, `#`, spaces.
_SPECIAL = ["ก", "่", "ั", "क", "ि", "्", "e\u0301", "\u0301", "👩\u200d💻", "👍🏽", "🙂",
            "𝔘", "𠀀", "\u0000", "#", "##", " ", "\t", "ＡＢ", "ﬁ", "İ", "ß", "Σ", "'", ".", "7pm"]
_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]), st.sampled_from(_SPECIAL))
_TEXT = st.lists(_CHAR, max_size=80).map("".join)
_TOKEN = st.one_of(st.lists(_CHAR, max_size=6).map("".join),
                   st.lists(_CHAR, min_size=30, max_size=60).map("".join))
SMALL = dict(max_tokens=6, max_chars=5, max_pieces=3)
VOCAB = ["a", "b", "ab", "##a", "##b", "##ab", "ก", "##่", "##ั", "क", "##ि", "#", "##", "###",
         "🙂", "set", "##s", "al", "##arm"]


def expected_row(encoder, token):
    return [ord(c) for c in encoder.normalize_token(token)[:encoder.max_chars]]


def rows(array):
    """Non-padding rows of a [tokens, chars] array as lists of codepoints (padding stripped)."""
    return [[int(c) for c in row if c] for row in array if row[0] != 0]


def test_layout_and_padding():
    enc = TextEncoder(max_tokens=5, max_chars=4)
    x = enc.encode_tokens(["Set", "an", "alarm"])
    assert x.shape == (5, 4) and x.dtype == np.int32
    assert x[0].tolist() == [ord("s"), ord("e"), ord("t"), 0]
    assert x[2].tolist() == [ord(c) for c in "alar"]
    assert (x[3:] == 0).all()
    assert (x[:, 0] != 0).tolist() == [True, True, True, False, False]
    assert enc.decode_tokens(x) == ["set", "an", "alar"]
    batch = enc.encode_tokens_batch([["a"], [], ["b", "c"]])
    assert batch.shape == (3, 5, 4)
    assert (batch[1] == 0).all()
    assert batch.flags.writeable


def test_encode_text_keeps_raw_offsets():
    enc = TextEncoder(max_tokens=3)
    text = "ＡＬＡＲＭ for 7pm, please"
    out = enc.encode_text(text)
    assert out.tokens == ["ＡＬＡＲＭ", "for", "7", "pm", ",", "please"]
    assert all(text[s:e] == t for t, (s, e) in zip(out.tokens, out.offsets))
    assert out.num_encoded == 3
    # NFKC folds the full-width letters, then lower-casing: the offsets still index the raw text.
    assert enc.decode_tokens(out.codepoints) == ["alarm", "for", "7"]
    assert enc.stats.tokens_dropped == 3 and enc.stats.examples_truncated == 1
    assert out.subwords is None


def test_normalisation_options():
    assert TextEncoder().normalize_token("ﬁＡ") == "fia"
    assert TextEncoder(normalization=None, lowercase=False).normalize_token("ﬁＡ") == "ﬁＡ"
    assert TextEncoder(normalization="NFC").normalize_token("E\u0301") == "é"
    assert TextEncoder(normalization="NFD").normalize_token("é") == "e\u0301"
    # Lower-casing may lengthen a token; the row holds the normalised form.
    assert TextEncoder().normalize_token("İ") == "i\u0307"


def test_unrepresentable_code_points_and_empty_tokens():
    enc = TextEncoder(max_tokens=4, max_chars=4)
    x = enc.encode_tokens(["\ud83d\ude00", "a\x00b", "", "ok"])
    assert enc.decode_tokens(x) == [REPLACEMENT * 2, "a" + REPLACEMENT + "b", REPLACEMENT, "ok"]
    assert (x[:, 0] != 0).all()  # every position is a token: none looks like padding
    assert enc.stats.chars_replaced == 3 and enc.stats.empty_tokens == 1
    out = enc.encode_text("a\udc80b \x00")
    assert all(c != 0 for row in rows(out.codepoints) for c in row)
    assert "replaced by U+FFFD" in enc.stats.summary()


def test_truncation_is_counted_reported_and_logged(caplog):
    enc = TextEncoder(max_tokens=3, max_chars=4)
    with caplog.at_level(logging.WARNING, logger="prado_tiny.data.text_encoder"):
        enc.encode_tokens_batch([["a", "b", "c", "d", "e"], ["abcdefg", "xy"], ["abcde"]])
    st_ = enc.stats
    assert (st_.examples, st_.tokens, st_.tokens_dropped, st_.examples_truncated) == (3, 8, 2, 1)
    assert (st_.tokens_chars_cut, st_.chars_dropped) == (2, 4)
    assert st_.truncated
    text = st_.summary(enc)
    assert "max_tokens=3: 2 dropped" in text and "max_chars=4: 2" in text and "4 chars dropped" in text
    assert any("max_tokens" in r.getMessage() for r in caplog.records)
    assert any("max_chars" in r.getMessage() for r in caplog.records)
    # Cached tokens are counted again on every occurrence.
    enc.encode_tokens(["abcdefg"])
    assert enc.stats.tokens_chars_cut == 3
    old = enc.reset_stats()
    assert old.examples == 4 and enc.stats == EncoderStats()
    assert not enc.stats.truncated


def test_subword_layout():
    enc = TextEncoder(wordpiece=VOCAB, **SMALL)
    x = enc.encode_subwords(["Alarm", "SETS", "zz", "กั่"])
    assert x.shape == (6, 3, 5) and x.dtype == np.int32
    assert enc.decode_subwords(x) == [["al", "##arm"], ["set", "##s"], ["zz"], ["ก", "##ั", "##่"]]
    assert x[0, 1, :2].tolist() == [35, 35]  # the literal `##`
    assert (x[4:] == 0).all() and (x[0, 2] == 0).all()
    cut = enc.encode_subwords(["ababab", "#####"])
    assert enc.decode_subwords(cut) == [["ab", "##ab", "##ab"], ["###", "###", "###"]]
    assert enc.stats.pieces_dropped == 0
    enc.encode_subwords(["abababab"])
    assert enc.stats.pieces_dropped == 1 and enc.stats.tokens_pieces_cut == 1
    assert "max_pieces=3: 1 dropped" in enc.stats.summary(enc)
    both = enc.encode_text("alarm sets")
    assert both.subwords.shape == (6, 3, 5)
    assert enc.decode_subwords(both.subwords) == [["al", "##arm"], ["set", "##s"]]
    with pytest.raises(ValueError):
        TextEncoder().encode_subwords(["a"])


def test_encode_text_counts_each_example_once():
    enc = TextEncoder(wordpiece=VOCAB, **SMALL)
    enc.encode_texts(["a b", "\ud800"])
    assert enc.stats.examples == 2 and enc.stats.tokens == 3 and enc.stats.chars_replaced == 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(_TEXT, min_size=1, max_size=4))
def test_any_text_encodes_to_the_layout(texts):
    enc = TextEncoder(wordpiece=VOCAB, **SMALL)
    out = enc.encode_texts(texts)
    assert out.codepoints.shape == (len(texts), 6, 5) and out.codepoints.dtype == np.int32
    assert out.subwords.shape == (len(texts), 6, 3, 5)
    assert out.codepoints.min() >= 0 and out.codepoints.max() <= 0x10FFFF
    expected_drop = 0
    for i, text in enumerate(texts):
        tokens = out.tokens[i]
        assert tokens == [t for t, _, _ in tokenize(text)]
        assert all(text[s:e] == t for t, (s, e) in zip(tokens, out.offsets[i]))
        kept = tokens[:6]
        assert rows(out.codepoints[i]) == [expected_row(enc, t) for t in kept]
        assert (out.codepoints[i, len(kept):] == 0).all()
        assert (out.subwords[i, len(kept):] == 0).all()
        assert (out.subwords[i, :len(kept), 0, 0] != 0).all()
        # No surrogate or NUL inside a token row.
        assert not ((out.codepoints[i] >= 0xD800) & (out.codepoints[i] <= 0xDFFF)).any()
        expected_drop += max(0, len(tokens) - 6)
    assert enc.stats.tokens_dropped == expected_drop
    assert enc.stats.examples == len(texts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_lists=st.lists(st.lists(_TOKEN, max_size=9), min_size=1, max_size=3))
def test_any_tokens_encode_with_counted_truncation(token_lists):
    enc = TextEncoder(wordpiece=VOCAB, **SMALL)
    x = enc.encode_tokens_batch(token_lists)
    s = enc.encode_subwords_batch(token_lists)
    splitter = WordpieceSplitter(VOCAB)
    chars_dropped = pieces_dropped = 0
    for i, tokens in enumerate(token_lists):
        kept = tokens[:6]
        assert rows(x[i]) == [expected_row(enc, t) for t in kept]
        for j, token in enumerate(kept):
            norm = enc.normalize_token(token)
            pieces = splitter.split(norm)
            assert enc.decode_tokens(s[i, j]) == [p[:5] for p in pieces[:3]]
            chars_dropped += max(0, len(norm) - 5)
            pieces_dropped += max(0, len(pieces) - 3)
    # Both forms were encoded: each counts the sequences.
    total = sum(len(t) for t in token_lists)
    assert enc.stats.tokens == 2 * total
    assert enc.stats.chars_dropped == chars_dropped
    assert enc.stats.pieces_dropped == pieces_dropped
    # Batch and single encoding agree, and so does a fresh encoder (cache correctness).
    fresh = TextEncoder(wordpiece=VOCAB, **SMALL)
    for i, tokens in enumerate(token_lists):
        assert np.array_equal(enc.encode_tokens(tokens), x[i])
        assert np.array_equal(fresh.encode_subwords(tokens), s[i])


def test_overlong_input():
    enc = TextEncoder()
    text = ("word " * 5000) + "x" * 100_000
    out = enc.encode_text(text)
    assert out.num_encoded == 64 and len(out.tokens) == 5001
    assert enc.stats.tokens_dropped == 5001 - 64
    big = enc.encode_tokens(["y" * 100_000])
    assert rows(big) == [[ord("y")] * 24]
    assert enc.stats.chars_dropped == 100_000 - 24
    assert all(len(k) <= 256 for k in enc._token_cache)


def test_type_errors():
    enc = TextEncoder()
    with pytest.raises(TypeError):
        enc.encode_tokens("not a list")
    with pytest.raises(TypeError):
        enc.encode_tokens([b"bytes"])
    with pytest.raises(TypeError):
        enc.encode_text(["a"])
    with pytest.raises(TypeError):
        enc.encode_texts("one text")
    # Any iterable of token lists, e.g. a generator.
    gen = enc.encode_tokens_batch(t for t in (["a"], ["b", "c"]))
    assert enc.decode_tokens(gen[1]) == ["b", "c"]
    with pytest.raises(ValueError):
        TextEncoder(max_tokens=0)
    with pytest.raises(ValueError):
        TextEncoder(normalization="NFX")


def test_config_round_trip_and_save_load(tmp_path):
    enc = TextEncoder(max_tokens=7, max_chars=9, lowercase=False, normalization="NFC",
                      wordpiece=VOCAB, max_pieces=2, tokenizer="whitespace")
    config = enc.get_config()
    assert json.loads(json.dumps(config)) == config
    again = TextEncoder.from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config and again.fingerprint() == enc.fingerprint()
    tokens = ["Alarm", "sets", "กั่"]
    assert np.array_equal(again.encode_subwords(tokens), enc.encode_subwords(tokens))
    enc.save(tmp_path)
    assert (tmp_path / "wordpiece_vocab.txt").read_text(encoding="utf-8").split("\n")[:2] == VOCAB[:2]
    loaded = TextEncoder.load(tmp_path)
    assert loaded.get_config() == config
    assert loaded.encode_text("a b").tokens == ["a", "b"]
    # Any change of what the encoder outputs changes the fingerprint.
    assert TextEncoder(max_chars=25).fingerprint() != TextEncoder().fingerprint()
    assert TextEncoder(wordpiece=VOCAB[:-1]).fingerprint() != TextEncoder(wordpiece=VOCAB).fingerprint()
    assert TextEncoder(cache_size=5).fingerprint() == TextEncoder().fingerprint()
    with pytest.raises(ValueError):
        TextEncoder.from_config(dict(config, format_version=99))


def mtop_lines(datasets_dir, per_language=334):
    out = []
    for lang in ("en", "de", "es", "fr", "hi", "th"):
        with open(datasets_dir / "mtop" / lang / "train.txt", encoding="utf-8") as f:
            out += [line.split("\t")[0] for line in itertools.islice(f, per_language)]
    return out


def test_real_mtop_lines_fit_the_defaults(datasets_dir):
    enc = TextEncoder()
    lines = mtop_lines(datasets_dir)
    out = enc.encode_texts(lines)
    assert out.codepoints.shape == (len(lines), 64, 24)
    assert enc.stats.chars_dropped == 0
    # Thai gives one token per grapheme cluster, whose marks stay in the row.
    thai = lines[-1]
    thai_rows = enc.decode_tokens(out.codepoints[-1])
    assert "".join(thai_rows) == unicodedata.normalize("NFKC", "".join(thai.split())).lower()[
        :len("".join(thai_rows))]


_FRESH_SCRIPT = """
import hashlib, json, sys
sys.path.insert(0, {repo!r})
from prado_tiny.data.text_encoder import TextEncoder
texts = json.load(open({path!r}, encoding="utf-8"))
enc = TextEncoder(wordpiece={vocab!r}, max_pieces=3)
out = enc.encode_texts(texts)
print(hashlib.sha256(out.codepoints.tobytes() + out.subwords.tobytes()).hexdigest())
print(json.dumps(enc.stats.as_dict(), sort_keys=True))
"""


def test_same_output_in_a_fresh_process(datasets_dir, tmp_path):
    texts = mtop_lines(datasets_dir, 50) + ["Ünïcödé ＡＢ 👩\u200d💻 ﬁ", "", "a\ud800b"]
    enc = TextEncoder(wordpiece=VOCAB, max_pieces=3)
    out = enc.encode_texts(texts)
    digest = hashlib.sha256(out.codepoints.tobytes() + out.subwords.tobytes()).hexdigest()
    path = tmp_path / "texts.json"
    path.write_text(json.dumps(texts), encoding="utf-8")
    env = dict(os.environ, PYTHONHASHSEED="987")
    script = _FRESH_SCRIPT.format(repo=REPO, path=str(path), vocab=VOCAB)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                         timeout=60, check=True)
    lines = res.stdout.strip().splitlines()
    assert lines[0] == digest
    assert json.loads(lines[1]) == enc.stats.as_dict()


def test_piece_ids_form():
    enc = TextEncoder(max_tokens=4, max_chars=8, max_pieces=3,
                      wordpiece=["wake", "##s", "me", "up"])
    ids = enc.encode_piece_ids(["Wakes", "me", "zzz"])
    assert ids.shape == (4, 3) and ids.dtype == np.int32
    # vocabulary index + 2; a token WordPiece keeps whole is out of vocabulary (1); 0 is padding
    assert ids.tolist() == [[2, 3, 0], [4, 0, 0], [1, 0, 0], [0, 0, 0]]
    assert enc.encode_form("piece_ids", ["up"]).tolist()[0] == [5, 0, 0]
    assert enc.input_shape("piece_ids") == (4, 3)
    assert enc.input_shape("subwords") == (4, 3, 8) and enc.input_shape("codepoints") == (4, 8)
    batch = enc.encode_piece_ids_batch([["me"], ["up", "me", "me", "me", "me"]])
    assert batch.shape == (2, 4, 3) and batch[1, :, 0].tolist() == [5, 4, 4, 4]
    with pytest.raises(ValueError, match="WordPiece vocabulary"):
        TextEncoder().encode_piece_ids(["x"])
    with pytest.raises(ValueError, match="input form"):
        enc.encode_form("bytes", ["x"])
