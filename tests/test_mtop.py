"""Tests for prado_tiny.data.mtop: hand-written files of both formats, and the real data."""
import json

import pytest

from prado_tiny.data import mtop
from prado_tiny.data.example import DataError, ReadReport
from prado_tiny.data.tokenizer import tokenize

PARSE = "[IN:CREATE_CALL [SL:CONTACT Nicholas ] [SL:CONTACT Natasha ] ]"
UTT = "call Nicholas and Natasha"


def tokens_json(utterance, tokens=None):
    toks = tokens if tokens is not None else [(t, s, e) for t, s, e in tokenize(utterance)]
    return json.dumps({"tokens": [t for t, _, _ in toks],
                       "tokenSpans": [{"start": s, "length": e - s} for _, s, e in toks]})


def official(ex_id="101", intent="IN:CREATE_CALL", slots="5:13:SL:CONTACT,18:25:SL:CONTACT",
             utterance=UTT, domain="calling", locale="en_XX", parse=PARSE, toks=None):
    return "\t".join([ex_id, intent, slots, utterance, domain, locale, parse,
                      toks if toks is not None else tokens_json(utterance)])


def flat(utterance=UTT, flat_parse=PARSE, parse=PARSE, domain="calling", locale="en_XX"):
    return "\t".join([utterance, flat_parse, parse, domain, locale])


def write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Hand-written files


def test_official_and_flat_rows_give_the_same_example(tmp_path):
    a = list(mtop.read_mtop_file(str(write(tmp_path / "off" / "en" / "eval.txt", [official()]))))
    b = list(mtop.read_mtop_file(str(write(tmp_path / "flat" / "en" / "eval.txt", [flat()]))))
    assert len(a) == len(b) == 1
    a, b = a[0], b[0]
    assert a.id == "101" and b.id == "en/eval:1"
    assert a.tokens == b.tokens == ["call", "Nicholas", "and", "Natasha"]
    assert a.offsets == b.offsets == [(0, 4), (5, 13), (14, 17), (18, 25)]
    assert a.slots == b.slots == ["O", "B-CONTACT", "O", "B-CONTACT"]
    assert a.intent == b.intent == "CREATE_CALL"
    assert a.parse == b.parse == PARSE
    assert a.language == b.language == "en" and a.domain == "calling"
    assert a.source.endswith("eval.txt:1") and a.unaligned is None and b.unaligned is None


def test_official_uses_the_datasets_own_tokens(tmp_path):
    # The file's tokens win over the tokenizer's (`e-mail` would be 3 tokens there).
    utt = "send e-mail now"
    toks = tokens_json(utt, [("send", 0, 4), ("e-mail", 5, 11), ("now", 12, 15)])
    row = official(intent="IN:SEND_MESSAGE", slots="5:11:SL:TYPE_CONTENT", utterance=utt, domain="messaging",
                   parse="[IN:SEND_MESSAGE [SL:TYPE_CONTENT e - mail ] ]", toks=toks)
    ex, = mtop.read_mtop_file(str(write(tmp_path / "en" / "test.txt", [row])))
    assert ex.tokens == ["send", "e-mail", "now"] and ex.slots == ["O", "B-TYPE_CONTENT", "O"]


def test_flat_parse_gives_the_slots_of_nested_queries(tmp_path):
    # The flat column holds the official slot text (`with my mom`), which the decoupled parse's
    # nested TODO does not (it drops `with`).
    utt = "Show my spa reminders with my mom next month."
    flat_parse = ("[IN:GET_REMINDER [SL:METHOD_RETRIEVAL_REMINDER Show ] [SL:PERSON_REMINDED my ] "
                  "[SL:TODO spa ] [SL:TODO with my mom ] [SL:DATE_TIME next month ] ]")
    parse = ("[IN:GET_REMINDER [SL:METHOD_RETRIEVAL_REMINDER Show ] [SL:PERSON_REMINDED my ] [SL:TODO spa ] "
             "[SL:TODO [IN:GET_TODO [SL:ATTENDEE [IN:GET_CONTACT [SL:CONTACT_RELATED my ] "
             "[SL:TYPE_RELATION mom ] ] ] ] ] [SL:DATE_TIME next month ] ]")
    ex, = mtop.read_mtop_file(str(write(tmp_path / "en" / "train.txt", [flat(utt, flat_parse, parse, "reminder")])))
    assert ex.slots == ["B-METHOD_RETRIEVAL_REMINDER", "B-PERSON_REMINDED", "B-TODO", "O", "B-TODO", "I-TODO",
                        "I-TODO", "B-DATE_TIME", "I-DATE_TIME", "O"]
    assert ex.parse == parse and ex.unaligned is None


def test_thai_flat_row(tmp_path):
    utt = "ตั้งปลุกพรุ่งนี้ 7 โมง"
    fp = "[IN:CREATE_ALARM [SL:DATE_TIME พรุ่ง นี้ 7 โมง ] ]"
    ex, = mtop.read_mtop_file(str(write(tmp_path / "th" / "eval.txt", [flat(utt, fp, fp, "alarm", "th_XX")])))
    assert ex.language == "th" and ex.unaligned is None
    tagged = [(t, s) for t, s in zip(ex.tokens, ex.slots) if s != "O"]
    assert tagged[0][1] == "B-DATE_TIME" and all(s == "I-DATE_TIME" for _, s in tagged[1:])
    start, end = ex.offsets[ex.slots.index("B-DATE_TIME")][0], ex.offsets[len(ex.slots) - 1][1]
    assert utt[start:end] == "พรุ่งนี้ 7 โมง"
    assert all(utt[s:e] == t for t, (s, e) in zip(ex.tokens, ex.offsets))


def test_unplaceable_slot_is_kept_with_a_reason(tmp_path):
    fp = "[IN:CREATE_CALL [SL:CONTACT Nicholas ] [SL:CONTACT Boris ] ]"
    report = ReadReport()
    ex, = mtop.read_mtop_file(str(write(tmp_path / "en" / "eval.txt", [flat(flat_parse=fp, parse=fp)])),
                              report=report)
    assert ex.slots == ["O", "B-CONTACT", "O", "O"]
    assert ex.unaligned.startswith("slot_text_not_in_utterance: CONTACT 'Boris'")
    assert report.rows == 1 and report.reasons() == {"slot_text_not_in_utterance": 1}


BAD_ROWS = {
    "column count": ("\t".join(["a", "b", "c"]), "expected 5 tab-separated columns .5-column flat format, as the file.s first row., found 3"),
    "flat unbalanced": (flat(flat_parse="[IN:CREATE_CALL [SL:CONTACT Nicholas ]"), "malformed flat parse"),
    "decoupled unbalanced": (flat(parse="[IN:CREATE_CALL [SL:CONTACT Nicholas ] ] ]"), "malformed decoupled parse"),
    "empty utterance": (flat(utterance=" "), "empty utterance"),
    "bad locale": (flat(locale="??"), "bad locale"),
    "intents disagree": (flat(flat_parse="[IN:CREATE_ALARM ]"), "disagrees"),
    "official span outside": (official(slots="5:13:SL:CONTACT,18:99:SL:CONTACT"), "outside the utterance"),
    "official bad span": (official(slots="5-13:SL:CONTACT"), "bad slot span"),
    "official bad json": (official(toks='{"tokens": ["call"'), "not valid JSON"),
    "official json shape": (official(toks='["call"]'), "must be"),
    "official token count": (official(toks=json.dumps({"tokens": ["call"], "tokenSpans": []})),
                             "token/tokenSpan mismatch: 1 tokens but 0"),
    "official token text": (official(toks=json.dumps({"tokens": ["kall"], "tokenSpans": [{"start": 0, "length": 4}]})),
                            "token/tokenSpan mismatch: token 0 is 'kall'"),
    "official token outside": (official(toks=json.dumps({"tokens": ["x"], "tokenSpans": [{"start": 40, "length": 1}]})),
                               "outside the utterance"),
    "official parse": (official(parse="[IN:CREATE_CALL [SL:CONTACT Nicholas ]"), "malformed decoupled parse"),
    "official intent vs parse": (official(intent="IN:CREATE_ALARM"), "disagrees"),
    "official empty utterance": (official(utterance=""), "empty utterance"),
}


@pytest.mark.parametrize("kind", sorted(BAD_ROWS))
def test_malformed_row_names_file_and_line(tmp_path, kind):
    row, message = BAD_ROWS[kind]
    good = official() if kind.startswith("official") else flat()
    path = write(tmp_path / "en" / "eval.txt", [good, row])
    with pytest.raises(DataError, match=message) as info:
        list(mtop.read_mtop_file(str(path)))
    assert info.value.path == str(path) and info.value.line == 2
    assert str(info.value).startswith(f"{path}:2: ")


def test_a_file_keeps_one_format(tmp_path):
    path = write(tmp_path / "en" / "eval.txt", [official(), flat()])
    with pytest.raises(DataError, match=r"expected 8 tab-separated columns \(official 8-column format"):
        list(mtop.read_mtop_file(str(path)))
    # Until a row fixes the format, either count is accepted.
    path = write(tmp_path / "en" / "train.txt", ["a\tb\tc", official()])
    with pytest.raises(DataError, match=r"train.txt:1: expected 5 or 8 tab-separated columns, found 3"):
        list(mtop.read_mtop_file(str(path)))


def test_language_of_the_folder_is_checked(tmp_path):
    path = write(tmp_path / "de" / "eval.txt", [flat()])
    with pytest.raises(DataError, match="not language 'de'"):
        list(mtop.read(str(tmp_path), "eval", ["de"]))


def test_skip_bad_rows_counts(tmp_path):
    rows = [flat(), "just one column", official(), flat(parse="[IN:X"), flat(), "", flat()]
    path = write(tmp_path / "en" / "train.txt", rows)
    report = ReadReport()
    got = list(mtop.read_mtop_file(str(path), report=report, skip_bad_rows=True))
    # Line 3 is 8 columns in a file detected as 5-column; line 6 is empty.
    assert [ex.source.rsplit(":", 1)[1] for ex in got] == ["1", "5", "7"]
    assert report.rows == 3
    assert [s["source"] for s in report.skipped] == [f"{path}:{n}" for n in (2, 3, 4, 6)]
    with pytest.raises(DataError):
        list(mtop.read_mtop_file(str(path)))


def test_read_layout_split_aliases_and_missing_files(tmp_path):
    write(tmp_path / "en" / "eval.txt", [flat()])
    write(tmp_path / "en" / "train.txt", [flat(), flat()])
    write(tmp_path / "de" / "train.txt", [flat(locale="de_XX")])
    (tmp_path / "notes").mkdir()
    assert mtop.available_languages(str(tmp_path)) == ["de", "en"]
    assert len(list(mtop.read(str(tmp_path), "dev"))) == 1  # dev finds eval.txt; de has none
    assert [ex.language for ex in mtop.read(str(tmp_path), "train")] == ["de", "en", "en"]
    assert len(list(mtop.read(str(tmp_path), "train", "en"))) == 2
    with pytest.raises(FileNotFoundError, match=r"de/eval\.txt.*de \(train\), en \(eval, train\)"):
        mtop.read(str(tmp_path), "eval", ["de"])  # raised at the call, before iterating
    with pytest.raises(FileNotFoundError, match="fr"):
        mtop.read(str(tmp_path), "train", ["fr"])
    with pytest.raises(FileNotFoundError, match="no language folder holds split 'test'"):
        mtop.read(str(tmp_path), "test")
    assert mtop.available_languages(str(tmp_path / "missing")) == []


# ---------------------------------------------------------------------------------------------
# Real data

COUNTS = {"en": (15667, 2235), "de": (13424, 1815), "es": (10934, 1527), "fr": (11815, 1577),
          "hi": (11357, 2027), "th": (10759, 1671)}
# Rows whose flat parse repeats a slot or lists one inside another (measured; see mtop.py).
MAX_UNALIGNED = {("en", "train"): 0, ("en", "eval"): 0, ("de", "train"): 40, ("de", "eval"): 3,
                 ("es", "train"): 21, ("es", "eval"): 3, ("fr", "train"): 32, ("fr", "eval"): 4,
                 ("hi", "train"): 21, ("hi", "eval"): 13, ("th", "train"): 22, ("th", "eval"): 4}


@pytest.mark.parametrize("lang", sorted(COUNTS))
@pytest.mark.parametrize("split", ["train", "eval"])
def test_real_mtop_counts_and_alignment(datasets_dir, lang, split):
    report = ReadReport()
    n = 0
    for ex in mtop.read(str(datasets_dir / "mtop"), split, [lang], report=report):
        assert len(ex.tokens) == len(ex.slots) == len(ex.offsets) > 0
        n += 1
    assert n == report.rows == COUNTS[lang][split == "eval"]
    assert not report.skipped
    assert len(report.unaligned) <= MAX_UNALIGNED[lang, split], report.unaligned[:5]
    assert set(report.reasons()) <= {"overlapping_slots", "duplicate_slot"}


def test_real_mtop_languages(datasets_dir):
    assert mtop.available_languages(str(datasets_dir / "mtop")) == sorted(COUNTS)
    assert mtop.available_languages(str(datasets_dir / "mtop_official")) == ["en"]
    assert mtop.available_languages(str(datasets_dir / "massive")) == []  # not MTOP's layout


def test_official_and_flat_english_eval_agree(datasets_dir):
    """The 8-column file (the dataset's own tokens and slot spans) and the 5-column file (our
    tokenizer and slot text search) give the same tokens and tags, row for row (measured: 2235 of
    2235; the floor leaves room for tokenizer changes)."""
    report = ReadReport()
    official_rows = list(mtop.read(str(datasets_dir / "mtop_official"), "dev", ["en"], report=report))
    flat_rows = list(mtop.read(str(datasets_dir / "mtop"), "dev", ["en"]))
    assert len(official_rows) == len(flat_rows) == report.rows == 2235
    assert not report.unaligned
    assert all(a.utterance == b.utterance and a.parse == b.parse for a, b in zip(official_rows, flat_rows))
    assert all(a.intent == b.intent and a.domain == b.domain for a, b in zip(official_rows, flat_rows))
    same = sum(a.tokens == b.tokens and a.offsets == b.offsets and a.slots == b.slots
               for a, b in zip(official_rows, flat_rows))
    assert same / 2235 >= 0.99, same
