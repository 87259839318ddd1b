"""Tests for prado_tiny.metrics: hand-computed scores, conlleval chunks, robustness, aggregation."""
import doctest

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prado_tiny.metrics
from prado_tiny.data.align import bio_to_spans
from prado_tiny.data.example import Example
from prado_tiny.data.parse import ParseError
from prado_tiny.data.vocab import LabelVocab
from prado_tiny.metrics import (NLUMetrics, evaluate, format_table, intent_correct, prf,
                                slot_chunks, slot_counts, tree_match)


def ex(intent, slots, language="en", parse=None, i=0):
    tokens = [f"w{k}" for k in range(len(slots))]
    offsets, pos = [], 0
    for t in tokens:
        offsets.append((pos, pos + len(t)))
        pos += len(t) + 1
    return Example(id=f"{language}-{i}", language=language, utterance=" ".join(tokens),
                   tokens=tokens, offsets=offsets, intent=intent, slots=list(slots), parse=parse,
                   source=f"test.tsv:{i + 1}")


def test_docstring_examples():
    assert doctest.testmod(prado_tiny.metrics).failed == 0


# -- chunking rules, through the metrics ------------------------------------------------------

def test_span_end_off_by_one_is_no_match():
    gold = ["B-t", "I-t", "O"]  # (t, 0, 2)
    assert slot_counts(gold, ["B-t", "I-t", "I-t"]) == (0, 1, 1)  # (t, 0, 3): one too long
    assert slot_counts(gold, ["B-t", "O", "O"]) == (0, 1, 1)  # (t, 0, 1): one too short
    assert slot_counts(gold, ["O", "I-t", "O"]) == (0, 1, 1)  # (t, 1, 2): start off by one
    assert slot_counts(gold, gold) == (1, 0, 0)


def test_i_after_o_starts_a_chunk():
    assert slot_chunks(["O", "I-a", "I-a"]) == {("a", 1, 3)}
    assert slot_counts(["O", "B-a", "I-a"], ["O", "I-a", "I-a"]) == (1, 0, 0)
    assert slot_counts(["I-a"], ["B-a"]) == (1, 0, 0)  # I- as the first tag, too


def test_type_change_inside_i_tags_starts_a_chunk():
    # I-x after B-y is a new x chunk, not a continuation of y.
    assert slot_chunks(["B-y", "I-x"]) == {("y", 0, 1), ("x", 1, 2)}
    assert slot_counts(["B-y", "I-x"], ["B-y", "B-x"]) == (2, 0, 0)
    # Reading it as one y chunk: 0 right, 1 predicted, 2 missed.
    assert slot_counts(["B-y", "I-x"], ["B-y", "I-y"]) == (0, 1, 2)
    assert slot_chunks(["I-a", "I-a", "I-b", "I-b"]) == {("a", 0, 2), ("b", 2, 4)}


def test_b_b_is_two_chunks():
    assert slot_chunks(["B-x", "B-x"]) == {("x", 0, 1), ("x", 1, 2)}
    assert slot_counts(["B-x", "B-x"], ["B-x", "I-x"]) == (0, 1, 2)
    assert slot_counts(["B-x", "I-x"], ["B-x", "B-x"]) == (0, 2, 1)


def test_chunk_at_sentence_end():
    assert slot_chunks(["O", "O", "B-a"]) == {("a", 2, 3)}
    assert slot_chunks(["O", "B-a", "I-a"]) == {("a", 1, 3)}
    assert slot_counts(["O", "B-a", "I-a"], ["O", "B-a", "I-a"]) == (1, 0, 0)
    assert slot_counts(["O", "B-a", "I-a"], ["O", "B-a", "O"]) == (0, 1, 1)


def test_tricky_sentence_by_hand():
    gold = ["B-time", "I-time", "O", "I-loc", "I-loc", "B-loc", "I-date"]
    pred = ["B-time", "O", "O", "B-loc", "I-loc", "I-loc", "B-date"]
    # gold chunks: (time,0,2) (loc,3,5) (loc,5,6) (date,6,7)   -- I-loc after O starts one,
    #              B-loc after I-loc starts another, I-date after B-loc starts another.
    # pred chunks: (time,0,1) (loc,3,6) (date,6,7)
    # tp = 1 (date), fp = 2, fn = 3 -> P = 1/3, R = 1/4, F1 = 2*(1/12)/(7/12) = 2/7.
    assert slot_chunks(gold) == {("time", 0, 2), ("loc", 3, 5), ("loc", 5, 6), ("date", 6, 7)}
    assert slot_counts(gold, pred) == (1, 2, 3)
    m = NLUMetrics()
    m.update(("x", gold), "x", pred)
    s = m.result()["overall"]
    assert s["slot_precision"] == pytest.approx(1 / 3)
    assert s["slot_recall"] == pytest.approx(1 / 4)
    assert s["slot_f1"] == pytest.approx(2 / 7)
    assert s["exact_match"] == 0.0 and s["intent_accuracy"] == 1.0


def test_bioes_tags_chunk_too():
    # E- closes a chunk, S- is a chunk on its own; I- after E- starts a new one.
    assert slot_chunks(["B-a", "E-a", "S-b", "I-b", "E-b", "S-a"]) == {
        ("a", 0, 2), ("b", 2, 3), ("b", 3, 5), ("a", 5, 6)}


def test_precision_and_recall_differ():
    golds = [["B-a", "I-a", "O", "B-b", "B-c"], ["O", "B-d"], ["B-e", "O"]]
    preds = [["B-a", "I-a", "O", "O", "O"], ["B-x", "B-d"], ["O", "O"]]
    # sentence 1: tp 1 (a), fn 2 (b, c); sentence 2: tp 1 (d), fp 1 (x); sentence 3: fn 1 (e).
    # tp 2, fp 1, fn 3 -> P = 2/3, R = 2/5, F1 = 2*(4/15)/(16/15) = 1/2.
    r = evaluate([("i", g) for g in golds], ["i"] * 3, preds)["overall"]
    assert (r["slot_tp"], r["slot_fp"], r["slot_fn"]) == (2, 1, 3)
    assert r["slot_precision"] == pytest.approx(2 / 3)
    assert r["slot_recall"] == pytest.approx(2 / 5)
    assert r["slot_f1"] == pytest.approx(0.5)
    # Swapping gold and prediction swaps precision and recall.
    r = evaluate([("i", p) for p in preds], ["i"] * 3, golds)["overall"]
    assert (r["slot_precision"], r["slot_recall"]) == (pytest.approx(2 / 5), pytest.approx(2 / 3))


def test_prf_conventions():
    assert prf(0, 0, 0) == (None, None, None)  # nothing to find and nothing found: undefined
    assert prf(0, 2, 0) == (0.0, 0.0, 0.0)  # chunks predicted where there are none
    assert prf(0, 0, 2) == (0.0, 0.0, 0.0)  # conlleval: no predictions -> precision 0
    assert prf(3, 0, 0) == (1.0, 1.0, 1.0)


# -- intents ----------------------------------------------------------------------------------

def test_multi_intents_compare_as_sets():
    assert intent_correct("a#b", "b#a")
    assert intent_correct("a#b", "a#b#a")
    assert not intent_correct("a#b", "a")
    assert not intent_correct("a#b", "a#b#c")
    assert not intent_correct("a", "a#")
    assert intent_correct("a", b"a")  # a TF string tensor's bytes
    for junk in (None, 3, ["a"], "", "A"):
        assert not intent_correct("a", junk)


def test_exact_match_uses_chunks_not_tags():
    m = NLUMetrics()
    assert m.update(ex("a", ["O", "B-x", "I-x"]), "a", ["O", "I-x", "I-x"])["exact_match"]
    assert not m.update(ex("a", ["O", "B-x"]), "b", ["O", "B-x"])["exact_match"]  # intent wrong
    assert not m.update(ex("a", ["B-x", "B-x"]), "a", ["B-x", "I-x"])["exact_match"]
    out = m.update(ex("a#b", ["O"]), "b#a", ["O"])
    assert out["exact_match"] and out["intent_correct"]
    assert m.result()["overall"]["exact_match"] == pytest.approx(2 / 4)


# -- robustness of predictions ----------------------------------------------------------------

def test_unknown_predicted_labels_are_wrong_and_counted():
    vocab = LabelVocab.from_examples([ex("a", ["B-x", "O"])])
    m = NLUMetrics(vocab=vocab)
    out = m.update(ex("never_trained", ["B-x", "O"]), "<unk>", ["<unk>", "B-zzz"])
    # `<unk>` reads as a one-token chunk of type `<unk>`, B-zzz as a zzz chunk: 2 fp; x missed.
    assert out == {"intent_correct": False, "slot_tp": 0, "slot_fp": 2, "slot_fn": 1,
                   "exact_match": False, "tree_match": None, "length_mismatch": False}
    m.update(ex("a", ["B-x", "O"]), "zzz", ["B-x", "O"])
    m.update(ex("a", ["B-x", "O"]), "a", ["B-x", "O"])
    r = m.result()["overall"]
    assert (r["unknown_intents"], r["unknown_slot_tags"]) == (2, 2)
    assert r["intent_accuracy"] == pytest.approx(1 / 3)
    assert "predicted intents outside the vocabulary" in format_table(m.result())


@pytest.mark.parametrize("pred", [None, [], "", 7, [None, 3], [b"B-x"], "B-x O", ["B-x", "O"],
                                  ["B-x", "O", "B-y"], ["O"] * 40, [["B-x"]], float("nan")])
def test_any_prediction_is_scored_without_crashing(pred):
    m = NLUMetrics(vocab=LabelVocab.from_examples([ex("a", ["B-x", "O"])]))
    out = m.update(ex("a", ["B-x", "O"], parse="[IN:a [SL:x w0 ] w1 ]"), pred, pred, pred)
    assert out["slot_tp"] + out["slot_fn"] == 1
    format_table(m.result())


def test_wrong_length_predictions():
    m = NLUMetrics()
    # Too short: missing tags predict nothing, so the gold chunk there is a false negative.
    out = m.update(ex("a", ["B-x", "O"]), "a", [])
    assert (out["slot_tp"], out["slot_fp"], out["slot_fn"]) == (0, 0, 1)
    assert out["length_mismatch"] and not out["exact_match"]
    out = m.update(ex("a", ["O", "B-x", "I-x"]), "a", ["O", "B-x"])  # (x,1,2) vs gold (x,1,3)
    assert (out["slot_tp"], out["slot_fp"], out["slot_fn"]) == (0, 1, 1)
    # Too long: a chunk past the end matches nothing; trailing O's are harmless but still
    # a mismatch, and never an exact match.
    out = m.update(ex("a", ["O", "O"]), "a", ["O", "O", "B-x"])
    assert (out["slot_tp"], out["slot_fp"], out["slot_fn"]) == (0, 1, 0)
    out = m.update(ex("a", ["B-x", "O"]), "a", ["B-x", "O", "O"])
    assert (out["slot_tp"], out["slot_fp"], out["slot_fn"]) == (1, 0, 0)
    assert out["length_mismatch"] and not out["exact_match"]
    # A whitespace-separated string is a tag list of the right length.
    out = m.update(ex("a", ["B-x", "O"]), "a", "B-x O")
    assert out["exact_match"] and not out["length_mismatch"]
    r = m.result()
    assert r["overall"]["length_mismatch"] == 4
    assert "note: predictions with the wrong number of tags: 4 (en 4)" in format_table(r)


# -- tree exact match -------------------------------------------------------------------------

GOLD_PARSE = "[IN:CREATE_ALARM [SL:DATE_TIME for 7 am ] ]"


def test_tree_match():
    assert tree_match(GOLD_PARSE, "[IN:CREATE_ALARM  [SL:DATE_TIME for 7 am ]]")
    assert tree_match(GOLD_PARSE, "[IN:CREATE_ALARM [SL:DATE_TIME for 7 am]]")  # MASSIVE spelling
    assert not tree_match(GOLD_PARSE, "[IN:CREATE_ALARM [SL:DATE_TIME for 7 ] am ]")
    assert not tree_match(GOLD_PARSE, "[IN:CREATE_ALARM [SL:DATE_TIME for 7 am ]")  # unclosed
    assert not tree_match(GOLD_PARSE, "")
    assert not tree_match(GOLD_PARSE, None)
    with pytest.raises(ParseError):
        tree_match("[SL:X a ]", GOLD_PARSE)


def test_tree_exact_match_in_the_accumulator():
    m = NLUMetrics()
    slots = ["O", "B-t", "I-t", "I-t"]
    g = ex("IN:CREATE_ALARM", slots, parse=GOLD_PARSE)
    assert m.update(g, "IN:CREATE_ALARM", slots, "[IN:CREATE_ALARM [SL:DATE_TIME for 7 am]]"
                    )["tree_match"] is True
    unclosed = "[IN:CREATE_ALARM [SL:DATE_TIME"
    assert m.update(g, "IN:CREATE_ALARM", slots, unclosed)["tree_match"] is False
    assert m.update(g, "IN:CREATE_ALARM", slots, 42)["tree_match"] is False
    assert m.update(g, "IN:CREATE_ALARM", slots, None)["tree_match"] is None  # no parse predicted
    assert m.update(ex("a", ["O"]), "a", ["O"], GOLD_PARSE)["tree_match"] is None  # no gold parse
    r = m.result()["overall"]
    assert (r["parses"], r["tree_correct"], r["malformed_parses"]) == (3, 1, 2)
    assert r["tree_exact_match"] == pytest.approx(1 / 3)
    assert r["examples"] == 5


def test_malformed_gold_parse_names_the_example():
    m = NLUMetrics()
    with pytest.raises(ParseError, match="test.tsv:8"):
        m.update(ex("a", ["O"], parse="[IN:A [SL:B ] ]", i=7), "a", ["O"], "[IN:A x ]")


def test_no_gold_parses_gives_no_tree_score():
    r = evaluate([ex("a", ["O"])], ["a"], [["O"]])
    assert r["overall"]["tree_exact_match"] is None
    assert r["overall"]["slot_f1"] is None  # no chunks anywhere: undefined, not 0 or 1
    row = format_table(r).splitlines()[1].split()
    assert row == ["en", "1", "100.00", "-", "-", "-", "-", "100.00", "-"]


# -- aggregation ------------------------------------------------------------------------------

def test_per_language_overall_and_average_with_unequal_sizes():
    m = NLUMetrics()
    for i in range(3):  # en: 3 examples, all right
        m.update(ex("a", ["B-x", "O"], "en", i=i), "a", ["B-x", "O"])
    m.update(ex("a", ["B-x", "I-x"], "de"), "b", ["B-x", "O"])  # de: 1 example, all wrong
    r = m.result()
    en, de = r["languages"]["en"], r["languages"]["de"]
    assert list(r["languages"]) == ["de", "en"]  # sorted
    assert (en["examples"], de["examples"]) == (3, 1)
    assert (en["intent_accuracy"], de["intent_accuracy"]) == (1.0, 0.0)
    assert (en["slot_f1"], de["slot_f1"]) == (1.0, 0.0)  # de: tp 0, fp 1, fn 1
    # overall is micro: intents 3/4; slots tp 3, fp 1, fn 1 -> P = R = F1 = 3/4.
    o = r["overall"]
    assert o["examples"] == 4
    assert o["intent_accuracy"] == pytest.approx(0.75)
    assert (o["slot_precision"], o["slot_recall"], o["slot_f1"]) == (
        pytest.approx(0.75), pytest.approx(0.75), pytest.approx(0.75))
    assert o["exact_match"] == pytest.approx(0.75)
    # average is the unweighted mean over the two languages.
    a = r["average"]
    assert a["languages"] == 2
    assert a["intent_accuracy"] == a["slot_f1"] == a["exact_match"] == pytest.approx(0.5)
    assert a["tree_exact_match"] is None


def test_language_override_and_default():
    m = NLUMetrics()
    m.update(ex("a", ["O"], "en"), "a", ["O"], language="fr")
    m.update({"intent": "a", "slots": ["O"]}, "a", ["O"])
    assert list(m.result()["languages"]) == ["fr", "und"]
    m.reset()
    assert m.result()["languages"] == {}
    assert m.result()["overall"]["intent_accuracy"] is None


def test_average_skips_languages_where_a_score_is_undefined():
    m = NLUMetrics()
    m.update(ex("a", ["O"], "en"), "a", ["O"])  # en: no chunks at all -> slot F1 undefined
    m.update(ex("a", ["B-x"], "de"), "a", ["B-x"])  # de: F1 1
    m.update(ex("a", ["B-x", "B-y"], "th"), "a", ["B-x", "O"])  # th: tp 1 fn 1 -> F1 2/3
    r = m.result()
    assert r["languages"]["en"]["slot_f1"] is None
    assert r["average"]["slot_f1"] == pytest.approx((1.0 + 2 / 3) / 2)
    assert r["average"]["intent_accuracy"] == 1.0


def test_slot_tag_accuracy_counts_only_non_o_gold_tokens():
    m = NLUMetrics()
    # Gold non-O tokens: B-x, I-x (2). Predicted: B-x right, I-x given as B-x (wrong tag, even
    # though chunk F1 also counts it wrong); the O token predicted as B-y is not scored here.
    m.update(ex("a", ["B-x", "I-x", "O"], "en"), "a", ["B-x", "B-x", "B-y"])
    # A prediction one tag short: the gold B-z it misses is wrong.
    m.update(ex("a", ["O", "B-z"], "en", i=1), "a", ["O"])
    m.update(ex("a", ["O"], "de"), "a", ["B-x"])  # no non-O gold tag: undefined, not 0 or 1
    r = m.result()
    en, de = r["languages"]["en"], r["languages"]["de"]
    assert (en["tags_correct"], en["tags_scored"]) == (1, 3)
    assert en["slot_tag_accuracy"] == pytest.approx(1 / 3)
    assert de["slot_tag_accuracy"] is None
    assert r["average"]["slot_tag_accuracy"] == pytest.approx(1 / 3)  # de left out of the mean


def test_format_table():
    m = NLUMetrics()
    m.update(ex("a", ["B-x", "O"], "en"), "a", ["B-x", "O"])
    m.update(ex("a", ["B-x", "I-x"], "de"), "a", ["B-x", "O"])
    m.update(ex("b", ["B-x", "O"], "de"), "a", ["B-x", "O"])
    lines = format_table(m.result()).splitlines()
    assert lines[0].split() == ["language", "examples", "intent", "slot", "P", "slot", "R", "slot",
                                "F1", "tag", "acc", "exact", "tree", "EM"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    # de: intents 1/2; chunks tp 1 fp 1 fn 1 -> P = R = F1 = 50; non-O gold tags 2 of 3 right;
    # exact 0/2.
    assert rows["de"] == ["2", "50.00", "50.00", "50.00", "50.00", "66.67", "0.00", "-"]
    assert rows["en"] == ["1", "100.00", "100.00", "100.00", "100.00", "100.00", "100.00", "-"]
    # overall: intents 2/3; tp 2 fp 1 fn 1 -> 66.67 each; tags 3/4; exact 1/3.
    assert rows["overall"] == ["3", "66.67", "66.67", "66.67", "66.67", "75.00", "33.33", "-"]
    assert rows["average"] == ["-", "75.00", "75.00", "75.00", "75.00", "83.33", "50.00", "-"]
    assert len(lines) == 5  # no notes when nothing was malformed


def test_evaluate_checks_lengths():
    with pytest.raises(ValueError, match="2 gold examples but 1 intents"):
        evaluate([("a", ["O"]), ("a", ["O"])], ["a"], [["O"], ["O"]])


# -- properties -------------------------------------------------------------------------------

TAGS = ["O", "B-a", "I-a", "B-b", "I-b"]
tag_lists = st.lists(st.sampled_from(TAGS), max_size=12)
junk = st.one_of(st.none(), st.integers(), st.binary(max_size=6), st.text(max_size=6),
                 st.lists(st.one_of(st.sampled_from(TAGS), st.text(max_size=4), st.none(),
                                    st.integers()), max_size=14))


@settings(max_examples=200, deadline=None)
@given(tag_lists)
def test_property_gold_against_itself_is_perfect(tags):
    n = len(bio_to_spans(tags))
    assert slot_counts(tags, tags) == (n, 0, 0)
    p, r, f = prf(*slot_counts(tags, tags))
    assert f == (1.0 if n else None)


@settings(max_examples=200, deadline=None)
@given(tag_lists, tag_lists)
def test_property_swapping_gold_and_prediction_swaps_fp_and_fn(gold, pred):
    tp, fp, fn = slot_counts(gold, pred)
    assert slot_counts(pred, gold) == (tp, fn, fp)
    p, r, f = prf(tp, fp, fn)
    if f is not None:
        # F1 is the harmonic mean: between P and R (up to rounding).
        assert 0.0 <= p <= 1.0 and 0.0 <= r <= 1.0
        assert min(p, r) - 1e-12 <= f <= max(p, r) + 1e-12


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["a", "b", "a#b"]), tag_lists, st.sampled_from(["a", "b", "b#a"]),
       tag_lists)
def test_property_exact_match_means_all_chunks_right(intent, gold, pred_intent, pred):
    out = NLUMetrics().update((intent, gold), pred_intent, pred)
    if out["exact_match"]:
        assert out["intent_correct"] and out["slot_fp"] == out["slot_fn"] == 0
        assert out["slot_tp"] == len(bio_to_spans(gold))
    elif out["intent_correct"] and not out["length_mismatch"]:
        assert out["slot_fp"] + out["slot_fn"] > 0


@settings(max_examples=200, deadline=None)
@given(tag_lists)
def test_property_chunks_survive_rewriting_as_strict_bio(tags):
    # Re-tag every chunk as B- then I-: conlleval's reading of `I-` after `O` or after another
    # type means the chunks (and so every score) must not change.
    strict = ["O"] * len(tags)
    for typ, start, end in bio_to_spans(tags):
        strict[start:end] = ["B-" + typ] + ["I-" + typ] * (end - start - 1)
    assert slot_chunks(strict) == slot_chunks(tags)
    assert NLUMetrics().update(("i", tags), "i", strict)["exact_match"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["en", "de", "th"]), tag_lists, junk, junk, junk),
                min_size=1, max_size=10))
def test_property_any_predictions_aggregate_consistently(rows):
    m = NLUMetrics(vocab=LabelVocab.from_examples([{"intent": "a", "slots": TAGS}]))
    for lang, gold, p_intent, p_slots, p_parse in rows:
        g = ex("a", gold, lang, parse="[IN:a x ]")
        m.update(g, p_intent, p_slots, p_parse)
    r = m.result()
    counts = ("examples", "intents_correct", "slot_tp", "slot_fp", "slot_fn", "tags_correct",
              "tags_scored", "exact_matches",
              "parses", "tree_correct", "length_mismatch")
    for key in counts:  # overall is the sum over languages
        assert r["overall"][key] == sum(s[key] for s in r["languages"].values())
    for key in prado_tiny.metrics.SCORES:
        values = [s[key] for s in r["languages"].values() if s[key] is not None]
        assert r["average"][key] == (pytest.approx(sum(values) / len(values)) if values else None)
        for s in list(r["languages"].values()) + [r["overall"]]:
            assert s[key] is None or 0.0 <= s[key] <= 1.0
    format_table(r)


def _conlleval_end(prev_tag, tag, prev_type, typ):
    # conlleval's endOfChunk, from its documented rules.
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != typ


def _conlleval_start(prev_tag, tag, prev_type, typ):
    # conlleval's startOfChunk.
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("E", "I"):
        return True
    return tag != "O" and prev_type != typ


def _conlleval_chunks(tags):
    chunks, start, prev_tag, prev_type = [], None, "O", ""
    for i, t in enumerate(list(tags) + ["O"]):
        tag, typ = ("O", "") if t == "O" else t.split("-", 1)
        if start is not None and _conlleval_end(prev_tag, tag, prev_type, typ):
            chunks.append((prev_type, start, i))
            start = None
        if _conlleval_start(prev_tag, tag, prev_type, typ):
            start = i
        prev_tag, prev_type = tag, typ
    return chunks


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["O", "B-a", "I-a", "E-a", "S-a", "B-b", "I-b", "E-b", "S-b"]),
                max_size=12))
def test_property_chunker_agrees_with_conlleval_rules(tags):
    assert bio_to_spans(tags) == _conlleval_chunks(tags)
