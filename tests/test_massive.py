"""Tests for prado_tiny.data.massive: both layouts, hand-written, and the real data."""
import json

import pytest

from prado_tiny.data import massive
from prado_tiny.data.example import DataError, ReadReport


def jrow(**kw):
    row = {"id": "1", "locale": "en-US", "partition": "train", "scenario": "alarm", "intent": "alarm_set",
           "utt": "wake me up at nine am on friday",
           "annot_utt": "wake me up at [time : nine am] on [date : friday]", "worker_id": "7"}
    row.update(kw)
    return json.dumps(row, ensure_ascii=False)


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Official JSONL


def test_jsonl_row(tmp_path):
    path = write(tmp_path / "en-US.jsonl", [jrow()])
    ex, = massive.read_file(str(path))
    assert ex.id == "1" and ex.language == "en" and ex.intent == "alarm_set" and ex.domain == "alarm"
    assert ex.tokens == "wake me up at nine am on friday".split()
    assert ex.slots == ["O", "O", "O", "O", "B-time", "I-time", "O", "B-date"]
    assert ex.parse == "[IN:alarm_set [SL:time nine am ] [SL:date friday ] ]"
    assert ex.source == f"{path}:1" and ex.unaligned is None
    assert all(ex.utterance[s:e] == t for t, (s, e) in zip(ex.tokens, ex.offsets))


def test_jsonl_slot_inside_an_unspaced_word_splits_it(tmp_path):
    # ja-JP style: the bracket cuts a whitespace token; the token is split there.
    path = write(tmp_path / "ja-JP.jsonl", [jrow(locale="ja-JP", utt="明日の天気", annot_utt="[date : 明日]の天気",
                                                 intent="weather_query")])
    ex, = massive.read_file(str(path))
    assert ex.tokens == ["明日", "の天気"] and ex.slots == ["B-date", "O"] and ex.language == "ja"


def test_jsonl_whitespace_differences_between_annot_and_utt(tmp_path):
    path = write(tmp_path / "en-US.jsonl", [jrow(utt="wake me  up at nine am", annot_utt="wake me up at [time : nine  am]")])
    ex, = massive.read_file(str(path))
    assert ex.tokens == ["wake", "me", "up", "at", "nine", "am"] and ex.slots[-2:] == ["B-time", "I-time"]
    assert ex.unaligned is None


def test_jsonl_text_differences_fall_back_to_slot_search(tmp_path):
    path = write(tmp_path / "en-US.jsonl", [
        jrow(utt="wake me at nine am", annot_utt="wake me up at [time : nine am]"),
        jrow(utt="wake me at nine", annot_utt="wake me up at [time : nine am]")])
    ok, bad = massive.read_file(str(path))
    assert ok.slots == ["O", "O", "O", "B-time", "I-time"] and ok.unaligned is None
    assert bad.slots == ["O"] * 4 and bad.unaligned.startswith("annot_utt_differs_from_utt")


def test_jsonl_partitions(tmp_path):
    path = write(tmp_path / "en-US.jsonl", [jrow(id="1"), jrow(id="2", partition="dev"), jrow(id="3")])
    assert [ex.id for ex in massive.read_file(str(path))] == ["1", "2", "3"]
    assert [ex.id for ex in massive.read_file(str(path), split="train")] == ["1", "3"]
    assert [ex.id for ex in massive.read_file(str(path), split="eval")] == ["2"]  # dev alias
    with pytest.raises(FileNotFoundError, match=r"no rows of partition 'test' \(partitions present: dev, train\)"):
        list(massive.read_file(str(path), split="test"))


JSON_BAD = {
    "json": ('{"id": "1", "utt": ', "not valid JSON"),
    "not object": ("[1, 2]", "JSON object"),
    "missing field": (json.dumps({"id": "1", "locale": "en-US", "partition": "train", "intent": "x", "utt": "a"}),
                      "missing or non-string field.*annot_utt"),
    "empty utt": (jrow(utt=" ", annot_utt=" "), "empty utt"),
    "empty intent": (jrow(intent=""), "empty intent"),
    "unclosed bracket": (jrow(annot_utt="wake me up at [time : nine am on friday"), "unclosed"),
    "unmatched bracket": (jrow(annot_utt="wake me up at time : nine am] on friday"), "unmatched"),
    "no colon": (jrow(annot_utt="wake me up at [time nine am] on friday"), "not '\\[type : words\\]'"),
    "empty slot": (jrow(annot_utt="wake me up at [time : ] on friday"), "has no words"),
    "partition": (jrow(partition="holdout"), "unknown partition"),
    "locale": (jrow(locale="??"), "bad locale"),
}


@pytest.mark.parametrize("kind", sorted(JSON_BAD))
def test_jsonl_malformed_row_names_file_and_line(tmp_path, kind):
    row, message = JSON_BAD[kind]
    path = write(tmp_path / "en-US.jsonl", [jrow(), row])
    with pytest.raises(DataError, match=message) as info:
        list(massive.read_file(str(path)))
    assert info.value.line == 2 and str(info.value).startswith(f"{path}:2: ")


def test_jsonl_language_is_checked(tmp_path):
    path = write(tmp_path / "de-DE.jsonl", [jrow()])
    with pytest.raises(DataError, match="not language 'de'"):
        list(massive.read(str(tmp_path), "train"))


# ---------------------------------------------------------------------------------------------
# Per-language folders: _raw, _sp, _conll

RAW = ["wake me up at nine am\talarm_set\tO O O O B-time I-time\talarm\ten-US",
       "shuffle this playlist\tmusic_settings\tB-player_setting O O\tmusic\ten-US"]
SP = ["wake me up at nine am\t[IN:alarm_set [SL:time nine am] ]\talarm\ten-US",
      "shuffle this playlist\t[IN:music_settings [SL:player_setting shuffle] ]\tmusic\ten-US"]
CONLL = ["wake\tO", "me\tO", "up\tO", "at\tO", "nine\tB-time", "am\tI-time", "",
         "shuffle\tB-player_setting", "this\tO", "playlist\tO", ""]


def test_raw_sp_and_conll_agree(tmp_path):
    raw = list(massive.read_file(str(write(tmp_path / "en" / "train_en_raw.txt", RAW))))
    sp = list(massive.read_file(str(write(tmp_path / "en" / "train_en_sp.txt", SP))))
    conll = list(massive.read_file(str(write(tmp_path / "en" / "train_en_conll.txt", CONLL))))
    assert len(raw) == len(sp) == len(conll) == 2
    for a, b, c in zip(raw, sp, conll):
        assert a.tokens == b.tokens == c.tokens and a.slots == b.slots == c.slots
        assert a.offsets == b.offsets == c.offsets and a.utterance == b.utterance == c.utterance
        assert a.intent == b.intent and a.parse == b.parse and a.domain == b.domain
        assert c.intent == "" and c.parse is None  # conll carries no intent
    assert raw[0].id == "en/train:1" and sp[1].id == "en/train:2" and conll[1].id == "en/train:8"
    assert sp[0].parse == "[IN:alarm_set [SL:time nine am ] ]"


def test_sp_thai_whitespace_tokens(tmp_path):
    # Thai MASSIVE is space-segmented by its annotators: those tokens are kept, and a slot is put
    # on the whole token `ชื่อ`, not on the `ชื่อ` inside `มีชื่อติดต่อ`.
    row = "มีชื่อติดต่อ ชื่อ เอเลน ใน รายการ\t[IN:email_querycontact [SL:personal_info ชื่อ] [SL:person เอเลน] ]\temail\tth-TH"
    ex, = massive.read_file(str(write(tmp_path / "th" / "dev_th_sp.txt", [row])))
    assert ex.tokens == ["มีชื่อติดต่อ", "ชื่อ", "เอเลน", "ใน", "รายการ"]
    assert ex.slots == ["O", "B-personal_info", "B-person", "O", "O"] and ex.language == "th"


def test_conll_without_trailing_blank_line(tmp_path):
    path = write(tmp_path / "en" / "dev_en_conll.txt", CONLL[:-1])
    assert len(list(massive.read_file(str(path)))) == 2


FOLDER_BAD = {
    "raw columns": ("train_en_raw.txt", RAW[:1] + ["a\tb"], "expected 5 tab-separated columns, found 2"),
    "raw tag count": ("train_en_raw.txt", RAW[:1] + ["wake me\talarm_set\tO\talarm\ten-US"], "1 BIO tags for 2"),
    "raw bad tag": ("train_en_raw.txt", RAW[:1] + ["wake me\talarm_set\tO X-time\talarm\ten-US"], "malformed slot tag 'X-time' \\(tag 2\\)"),
    "raw empty utterance": ("train_en_raw.txt", RAW[:1] + ["\talarm_set\t\talarm\ten-US"], "empty utterance"),
    "raw locale": ("train_en_raw.txt", RAW[:1] + ["wake\talarm_set\tO\talarm\tde-DE"], "not language 'en'"),
    "sp unbalanced": ("train_en_sp.txt", SP[:1] + ["wake me\t[IN:alarm_set [SL:time me]\talarm\ten-US"], "malformed parse"),
    "sp columns": ("train_en_sp.txt", SP[:1] + ["wake me\talarm\ten-US"], "expected 4 tab-separated columns"),
    "conll columns": ("train_en_conll.txt", ["wake\tO", "me O", ""], "expected 2 tab-separated columns"),
    "conll tag": ("train_en_conll.txt", ["wake\tO", "me\tB_x", ""], "malformed slot tag 'B_x'"),
}


@pytest.mark.parametrize("kind", sorted(FOLDER_BAD))
def test_folder_malformed_row_names_file_and_line(tmp_path, kind):
    name, lines, message = FOLDER_BAD[kind]
    path = write(tmp_path / "en" / name, lines)
    with pytest.raises(DataError, match=message) as info:
        list(massive.read(str(tmp_path), "train", ["en"]))
    assert info.value.line == 2 and str(info.value).startswith(f"{path}:2: ")


def test_skip_bad_rows_counts(tmp_path):
    path = write(tmp_path / "en" / "train_en_raw.txt",
                 [RAW[0], "broken", RAW[1], "wake\talarm_set\tO O\talarm\ten-US", RAW[0]])
    report = ReadReport()
    got = list(massive.read(str(tmp_path), "train", report=report, skip_bad_rows=True))
    assert [ex.id for ex in got] == ["en/train:1", "en/train:3", "en/train:5"] and report.rows == 3
    assert [s["source"] for s in report.skipped] == [f"{path}:2", f"{path}:4"]
    # conll: a bad line costs its whole example.
    path = write(tmp_path / "de" / "train_de_conll.txt", ["a\tO", "b\tQ", "", "c\tO", ""])
    report = ReadReport()
    got = list(massive.read_file(str(path), report=report, skip_bad_rows=True))
    assert [ex.tokens for ex in got] == [["c"]] and len(report.skipped) == 1 and report.rows == 1


def test_folder_layout_prefers_sp_then_raw_then_conll(tmp_path):
    write(tmp_path / "en" / "train_en_raw.txt", RAW)
    write(tmp_path / "en" / "train_en_sp.txt", SP)
    write(tmp_path / "de" / "dev_de_conll.txt", CONLL)
    write(tmp_path / "fr" / "dev_fr_raw.txt", [r.replace("en-US", "fr-FR") for r in RAW])
    assert massive.available_languages(str(tmp_path)) == ["de", "en", "fr"]
    report = ReadReport()
    assert len(list(massive.read(str(tmp_path), "train", report=report))) == 2
    assert report.files == [str(tmp_path / "en" / "train_en_sp.txt")]
    report = ReadReport()
    got = list(massive.read(str(tmp_path), "validation", report=report))  # dev alias
    assert [ex.language for ex in got] == ["de", "de", "fr", "fr"]
    assert report.files == [str(tmp_path / "de" / "dev_de_conll.txt"), str(tmp_path / "fr" / "dev_fr_raw.txt")]
    with pytest.raises(FileNotFoundError, match=r"en/dev_en_raw\.txt.*de: dev; en: train; fr: dev"):
        massive.read(str(tmp_path), "dev", ["en"])
    with pytest.raises(FileNotFoundError, match="no MASSIVE files of split 'test'"):
        massive.read(str(tmp_path), "test")


def test_jsonl_layout(tmp_path):
    write(tmp_path / "data" / "en-US.jsonl", [jrow(id="1"), jrow(id="2", partition="dev")])
    write(tmp_path / "data" / "de-DE.jsonl", [jrow(id="1", locale="de-DE")])
    assert massive.available_languages(str(tmp_path)) == ["de", "en"]
    assert [(ex.language, ex.id) for ex in massive.read(str(tmp_path), "train")] == [("de", "1"), ("en", "1")]
    assert [ex.id for ex in massive.read(str(tmp_path), "dev", "en")] == ["2"]
    with pytest.raises(FileNotFoundError, match="no MASSIVE file for language fr"):
        massive.read(str(tmp_path), "train", ["fr"])


def test_file_kind_detection(tmp_path):
    assert massive.file_kind(str(write(tmp_path / "a.txt", RAW))) == "raw"
    assert massive.file_kind(str(write(tmp_path / "b.txt", SP))) == "sp"
    assert massive.file_kind(str(write(tmp_path / "c.txt", CONLL))) == "conll"
    assert massive.file_kind(str(write(tmp_path / "d.txt", [jrow()]))) == "jsonl"
    assert massive.file_kind("x/train_en_sp.txt") == "sp"
    assert [ex.slots for ex in massive.read_file(str(tmp_path / "b.txt"))] == [
        ["O", "O", "O", "O", "B-time", "I-time"], ["B-player_setting", "O", "O"]]


# ---------------------------------------------------------------------------------------------
# Real data

LOCALES = ["de", "en", "es", "fr", "hi", "th"]


@pytest.mark.parametrize("lang", LOCALES)
@pytest.mark.parametrize("split, count", [("train", 11514), ("dev", 2033)])
def test_real_massive_counts(datasets_dir, lang, split, count):
    report = ReadReport()
    n = 0
    for ex in massive.read(str(datasets_dir / "massive"), split, [lang], report=report):
        assert len(ex.tokens) == len(ex.slots) == len(ex.offsets) > 0
        assert ex.language == lang and ex.intent and ex.parse.startswith("[IN:")
        n += 1
    assert n == report.rows == count
    assert not report.unaligned and not report.skipped
    assert report.files == [str(datasets_dir / "massive" / lang / f"{split}_{lang}_sp.txt")]


def test_real_massive_languages(datasets_dir):
    assert massive.available_languages(str(datasets_dir / "massive")) == LOCALES
    assert massive.available_languages(str(datasets_dir / "massive_official")) == ["en"]
    assert massive.available_languages(str(datasets_dir / "mtop")) == []  # not MASSIVE's layout


def test_real_official_jsonl_matches_sp_files(datasets_dir):
    """The official JSONL and the third-party `_sp` files agree on every row (tokens, tags,
    intent, parse); the `_raw` files drop slots on the first token, so they disagree on ~4%."""
    for split, count in (("train", 11514), ("dev", 2033)):
        report = ReadReport()
        official = list(massive.read(str(datasets_dir / "massive_official"), split, report=report))
        assert len(official) == report.rows == count and not report.unaligned
        sp = list(massive.read(str(datasets_dir / "massive"), split, ["en"]))
        same = sum((a.utterance, a.tokens, a.offsets, a.slots, a.intent, a.parse, a.domain)
                   == (b.utterance, b.tokens, b.offsets, b.slots, b.intent, b.parse, b.domain)
                   for a, b in zip(official, sp))
        assert same == count
    raw = massive.read_file(str(datasets_dir / "massive" / "en" / "dev_en_raw.txt"))
    differ = sum(a.slots != b.slots for a, b in zip(raw, official))
    assert 40 <= differ <= 100  # 67 measured: the reason `_sp` is preferred
    with pytest.raises(FileNotFoundError, match="partition 'test'"):
        list(massive.read(str(datasets_dir / "massive_official"), "test"))
