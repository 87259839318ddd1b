"""Tests for prado_tiny.data.wordpiece: learning, the vocabulary file, and the splitter.

The pure-Python splitter is checked against tensorflow-text's WordpieceTokenizer
(`unknown_token=None`) on real MTOP tokens of six languages and on generated strings.
"""
import itertools
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.tokenizer import tokenize
from prado_tiny.data.wordpiece import (WordpieceSplitter, learn_vocabulary, load_vocabulary,
                                       save_vocabulary, vocabulary_coverage)

LANGUAGES = ("en", "de", "es", "fr", "hi", "th")
LINES_PER_LANGUAGE = 334  # about 2000 lines in all: keeps learning near 2 s


def mtop_tokens(datasets_dir, split="train", lines=LINES_PER_LANGUAGE):
    """Token lists of the first `lines` utterances of each language's MTOP `split`."""
    out = []
    for lang in LANGUAGES:
        with open(datasets_dir / "mtop" / lang / f"{split}.txt", encoding="utf-8") as f:
            for line in itertools.islice(f, lines):
                out.append([t for t, _, _ in tokenize(line.split("\t")[0])])
    return out


@pytest.fixture(scope="module")
def learned(datasets_dir):
    encoder = TextEncoder()
    tokens = mtop_tokens(datasets_dir)
    vocab = learn_vocabulary(tokens, vocab_size=1000, normalize=encoder.normalize_token)
    return encoder, tokens, vocab


def test_docstring_example_and_unknown_tokens_stay_whole():
    splitter = WordpieceSplitter(["they", "##'", "##re", "great", "##est", "a", "##a"])
    assert splitter.split("greatest") == ["great", "##est"]
    assert splitter.split("they're") == ["they", "##'", "##re"]
    # No match at all, or a remainder with no match: the whole token, never [UNK].
    assert splitter.split("xyz") == ["xyz"]
    assert splitter.split("greatx") == ["greatx"]
    assert splitter.split("") == []
    assert splitter.split("aaa") == ["a", "##a", "##a"]
    # Longer than max_bytes_per_word UTF-8 bytes: kept whole (tensorflow-text's rule).
    short = WordpieceSplitter(["a", "##a"], max_bytes_per_word=4)
    assert short.split("aaaa") == ["a", "##a", "##a", "##a"]
    assert short.split("aaaaa") == ["aaaaa"]
    assert WordpieceSplitter(["é", "##é"], max_bytes_per_word=4).split("ééé") == ["ééé"]


def test_vocabulary_file_round_trip(tmp_path):
    vocab = ["[PAD]", "a", "##b", "with space", "𝔘𝔫𝔦", "##🙂", "ก", "##่", "#", "##"]
    path = tmp_path / "vocab.txt"
    save_vocabulary(vocab, path)
    assert path.read_bytes().decode("utf-8") == "\n".join(vocab) + "\n"
    assert load_vocabulary(path) == vocab
    assert WordpieceSplitter(str(path)).vocabulary == vocab
    assert WordpieceSplitter.load(path).split("ab") == ["a", "##b"]
    for bad in (["a", "a"], ["a\nb"], [""], ["\ud800"]):
        with pytest.raises(ValueError):
            save_vocabulary(bad, tmp_path / "bad.txt")
    # A BERT vocab.txt written with CRLF line ends still loads.
    (tmp_path / "crlf.txt").write_bytes(b"a\r\n##b\r\n")
    assert load_vocabulary(tmp_path / "crlf.txt") == ["a", "##b"]


def test_config_round_trip_is_json():
    splitter = WordpieceSplitter(["a", "##b"], max_bytes_per_word=50)
    config = json.loads(json.dumps(splitter.get_config()))
    again = WordpieceSplitter.from_config(config)
    assert again.vocabulary == splitter.vocabulary and again.max_bytes_per_word == 50


def test_learned_vocabulary_on_real_mtop(learned, tmp_path):
    encoder, tokens, vocab = learned
    assert 500 <= len(vocab) <= 1000
    assert len(set(vocab)) == len(vocab)
    assert any(p.startswith("##") for p in vocab)
    # Every character of the training tokens is a piece, so no training token stays unsplit.
    splitter = WordpieceSplitter(vocab)
    normalized = [encoder.normalize_token(t) for ex in tokens for t in ex]
    report = vocabulary_coverage(splitter, normalized)
    assert report["kept_whole_unmatched"] == 0
    for script_char in ("ก", "क", "a", "ü"):
        assert script_char in vocab
    save_vocabulary(vocab, tmp_path / "v.txt")
    assert load_vocabulary(tmp_path / "v.txt") == vocab


def test_python_splitter_equals_tf_text_on_real_tokens(learned, datasets_dir):
    encoder, train_tokens, vocab = learned
    splitter = WordpieceSplitter(vocab)
    # Training tokens plus unseen development tokens (with characters the vocabulary lacks).
    words = {encoder.normalize_token(t) for ex in train_tokens for t in ex}
    words |= {encoder.normalize_token(t) for ex in mtop_tokens(datasets_dir, "eval", 200)
              for t in ex}
    # Mixed case and raw forms too: the splitter must agree on any string.
    words |= {t for ex in train_tokens[:300] for t in ex}
    words = sorted(words)
    assert any("\u0e00" <= w[0] <= "\u0e7f" for w in words)  # Thai
    assert any("\u0900" <= w[0] <= "\u097f" for w in words)  # Devanagari
    expected = splitter.split_with_tf_text(words)
    got = splitter.split_tokens(words)
    mismatches = [(w, e, g) for w, e, g in zip(words, expected, got) if e != g]
    assert not mismatches, mismatches[:10]
    assert any(len(p) > 1 for p in got)


_ALPHABET = st.sampled_from(list("ab#") + ["é", "e\u0301", "ก", "่", "क", "ि", "🙂", "\u200d",
                                              "𝔘", "\u0000", " "])
_PIECE = st.lists(_ALPHABET, min_size=1, max_size=4).map("".join)
_WORD = st.lists(_ALPHABET, max_size=14).map("".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(heads=st.lists(_PIECE, max_size=12), tails=st.lists(_PIECE, max_size=12),
       words=st.lists(_WORD, min_size=1, max_size=20),
       max_bytes=st.sampled_from([5, 12, 100]))
def test_python_splitter_equals_tf_text_on_generated_strings(heads, tails, words, max_bytes):
    vocab = list(dict.fromkeys(heads + ["##" + t for t in tails]))
    vocab = [p for p in vocab if "\n" not in p] or ["a"]
    splitter = WordpieceSplitter(vocab, max_bytes_per_word=max_bytes)
    assert splitter.split_tokens(words) == splitter.split_with_tf_text(words)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_python_splitter_equals_tf_text_on_arbitrary_unicode(learned, data):
    vocab = learned[2]
    # Arbitrary strings (mostly kept whole), and strings glued from real pieces with an
    # occasional foreign character (long greedy matches, dead ends, continuation pieces).
    glued = st.lists(st.one_of(st.sampled_from(vocab).map(lambda p: p.removeprefix("##")),
                               st.characters(exclude_categories=("Cs",))),
                     min_size=1, max_size=8).map("".join)
    words = data.draw(st.lists(st.one_of(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=30), glued),
        min_size=1, max_size=30))
    splitter = WordpieceSplitter(vocab)
    assert splitter.split_tokens(words) == splitter.split_with_tf_text(words)


_LEARN_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.wordpiece import learn_vocabulary
tokens = json.load(open({path!r}, encoding="utf-8"))
print(json.dumps(learn_vocabulary(tokens, vocab_size=1000,
                                  normalize=TextEncoder().normalize_token)))
"""


def test_learned_vocabulary_is_the_same_in_a_fresh_process(learned, tmp_path):
    _, tokens, vocab = learned
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(tokens), encoding="utf-8")
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONHASHSEED="12345", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", _LEARN_SCRIPT.format(repo=repo, path=str(path))],
                         capture_output=True, text=True, env=env, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == vocab


def test_learning_rejects_nothing_to_learn():
    with pytest.raises(ValueError):
        learn_vocabulary([], vocab_size=10)


def test_cache_is_bounded():
    splitter = WordpieceSplitter(["a", "##a"], cache_size=3)
    for n in range(1, 10):
        assert splitter.split("a" * n) == ["a"] + ["##a"] * (n - 1)
        assert len(splitter._cache) <= 3


def test_learner_loaded_without_tensorflow_is_tensorflow_texts_own():
    import inspect

    import tensorflow_text.tools.wordpiece_vocab.wordpiece_tokenizer_learner_lib as lib

    from prado_tiny.data.wordpiece import _learner_module

    module = _learner_module()
    assert inspect.getsource(module) == inspect.getsource(lib)
    ordered = [("hello", 30), ("help", 20), ("world", 15), ("hell", 12)]
    assert module.learn(ordered, 50, [], lower_thresh=2) == lib.learn(ordered, 50, [], lower_thresh=2)
