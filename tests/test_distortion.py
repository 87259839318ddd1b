"""Tests for prado_tiny.data.distortion."""
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prado_tiny.data.distortion import TextDistorter, as_generator

TOKENS = ["set", "an", "alarm", "for", "7", "pm", "ตั้ง", "เวลา", "मुझे", "👍🏽"]
_CHAR = st.one_of(st.characters(), st.characters(categories=["Cs"]),
                  st.sampled_from(["ก", "่", "क", "ि", "\u0301", "👩\u200d💻", "𝔘"]))
_TOKEN = st.lists(_CHAR, max_size=12).map("".join)


def test_same_seed_same_output_and_seeds_differ():
    d = TextDistorter(probability=0.2)
    long = TOKENS * 20
    a = d.distort(long, np.random.default_rng(7))
    assert a == d.distort(long, np.random.default_rng(7))
    assert a == d.distort(long, 7)  # an int seed is the same as default_rng(seed)
    assert a != d.distort(long, np.random.default_rng(8))
    assert a != long


def test_generator_advances_between_calls():
    d = TextDistorter(probability=0.3)
    rng = np.random.default_rng(0)
    first, second = d.distort(TOKENS * 5, rng), d.distort(TOKENS * 5, rng)
    assert first != second


def test_zero_probability_is_identity_and_copies():
    tokens = list(TOKENS)
    out = TextDistorter(probability=0.0).distort(tokens, 1)
    assert out == tokens and out is not tokens


def test_only_deletions_at_full_probability_leave_first_characters():
    d = TextDistorter(probability=1.0, deletion=1, insertion=0, swap=0)
    assert d.distort(["abc", "d", "xy"], 0) == ["a", "d", "x"]


def test_only_swaps_and_only_insertions():
    swaps = TextDistorter(probability=1.0, deletion=0, insertion=0, swap=1)
    assert swaps.distort(["abcd", "abc", "z"], 0) == ["badc", "bca", "z"]
    inserts = TextDistorter(probability=1.0, deletion=0, insertion=1, swap=0)
    out = inserts.distort(["ab", "c"], 3)
    assert [len(t) for t in out] == [4, 2]
    assert out[0][1] == "a" and out[0][3] == "b" and out[1][1] == "c"


def test_edit_rate_matches_probability():
    d = TextDistorter(probability=0.1, deletion=1, insertion=0, swap=0)
    tokens = ["abcdefghij"] * 2000
    out = d.distort(tokens, 0)
    deleted = sum(len(t) - len(o) for t, o in zip(tokens, out)) / (10 * len(tokens))
    assert 0.09 < deleted < 0.11


def test_empty_inputs():
    d = TextDistorter(probability=0.5)
    assert d.distort([], 0) == []
    assert d.distort(["", ""], 0) == ["", ""]
    assert d.distort_batch([], 0) == []
    assert d.distort_batch([[], ["a"]], 0)[0] == []


def test_config_and_validation():
    d = TextDistorter(probability=0.05, deletion=2, insertion=1, swap=0.5)
    config = json.loads(json.dumps(d.get_config()))
    assert TextDistorter.from_config(config).get_config() == d.get_config()
    for bad in (dict(probability=1.5), dict(probability=-0.1), dict(deletion=-1),
                dict(deletion=0, insertion=0, swap=0)):
        with pytest.raises(ValueError):
            TextDistorter(**bad)
    with pytest.raises(ValueError):
        as_generator(None)


@settings(max_examples=200, deadline=None)
@given(batch=st.lists(st.lists(_TOKEN, max_size=8), max_size=4),
       p=st.sampled_from([0.0, 0.05, 0.3, 1.0]), seed=st.integers(0, 2 ** 32 - 1))
def test_properties_on_arbitrary_unicode(batch, p, seed):
    d = TextDistorter(probability=p)
    out = d.distort_batch(batch, np.random.default_rng(seed))
    assert out == d.distort_batch(batch, np.random.default_rng(seed))
    assert [len(tokens) for tokens in out] == [len(tokens) for tokens in batch]
    for tokens, new in zip(batch, out):
        source = set("".join(tokens))
        for token, edited in zip(tokens, new):
            assert isinstance(edited, str)
            assert bool(edited) == bool(token)  # never empties a token, never fills an empty one
            # Insertions copy characters of the same example: no new characters appear.
            assert set(edited) <= source
            assert len(edited) <= 2 * len(token)
    if p == 0.0:
        assert out == [list(t) for t in batch]
