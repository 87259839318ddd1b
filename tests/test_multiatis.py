"""Tests for prado_tiny.data.multiatis: hand-written fixtures for every bad-row kind, and the real files."""
import pytest

from prado_tiny.data import multiatis
from prado_tiny.data.example import DataError, ReadReport

HEADER = b"id\tutterance\tslot_labels\tintent\n"
GOOD = (b"1\tflights from boston to denver\tO O B-fromloc.city_name O B-toloc.city_name\tatis_flight\n"
        b"2\tfares to dallas\tO O B-toloc.city_name\tatis_flight#atis_airfare\n")


def _write(tmp_path, body: bytes, name="train_EN.tsv", header=HEADER):
    path = tmp_path / name
    path.write_bytes(header + body)
    return str(path)


def test_reads_rows_with_tokens_offsets_and_multi_intents(tmp_path):
    path = _write(tmp_path, GOOD)
    report = ReadReport()
    examples = list(multiatis.read_file(path, "EN", report=report))
    assert [e.id for e in examples] == ["1", "2"]
    first, second = examples
    assert first.language == "en"
    assert first.tokens == ["flights", "from", "boston", "to", "denver"]
    assert all(first.utterance[s:e] == t for t, (s, e) in zip(first.tokens, first.offsets))
    assert first.slots[2] == "B-fromloc.city_name"
    assert first.source == f"{path}:2"
    assert second.intent == "atis_flight#atis_airfare"
    assert second.intents == ("atis_flight", "atis_airfare")
    assert report.rows == 2 and not report.unaligned and not report.skipped


def test_no_break_space_stays_inside_a_token(tmp_path):
    # The published French/Spanish files tag `D.\u00a0C.` as one token.
    path = _write(tmp_path, "1\tvols pour Washington D.\u00a0C.\tO O B-toloc.city_name B-toloc.state_code\t"
                            "atis_flight\n".encode("utf-8"), name="dev_FR.tsv")
    (ex,) = multiatis.read_file(path, "fr")
    assert ex.tokens[-1] == "D.\u00a0C." and ex.unaligned is None


@pytest.mark.parametrize("body,line,message", [
    (b"3\tto denver\tO B-toloc.city_name\n", 2, "expected 4 tab-separated columns, found 3"),
    (b"3\t\t\tatis_flight\n", 2, "empty utterance"),
    (b"3\tto denver\tO B-toloc.city_name\t\n", 2, "empty intent"),
    (b"3\tto denver\tO X-toloc.city_name\tatis_flight\n", 2, "malformed slot tag 'X-toloc.city_name'"),
    (b"3\tto denver\tO B-\tatis_flight\n", 2, "malformed slot tag 'B-'"),
    (GOOD + b"3\tto \xff denver\tO O B-toloc.city_name\tatis_flight\n", 4, "invalid UTF-8"),
    (GOOD + b"3\tto denver\tO B-toloc.city_name\tatis_flight\r\n", 4, "CRLF"),
    (GOOD + b"\n", 4, "empty line"),
])
def test_malformed_rows_name_file_and_line(tmp_path, body, line, message):
    path = _write(tmp_path, body)
    with pytest.raises(DataError) as info:
        list(multiatis.read_file(path, "en"))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)
    # skip_bad_rows keeps the good rows and records the bad one by file:line.
    report = ReadReport()
    kept = list(multiatis.read_file(path, "en", report=report, skip_bad_rows=True))
    assert [r["source"] for r in report.skipped] == [f"{path}:{line}"]
    assert len(kept) == report.rows == body.count(b"\n") - 1


def test_tag_count_mismatch_is_kept_as_unaligned_or_raised_when_strict(tmp_path):
    path = _write(tmp_path, GOOD + b"3\tto denver please\tO B-toloc.city_name\tatis_flight\n")
    report = ReadReport()
    examples = list(multiatis.read_file(path, "en", report=report))
    assert len(examples) == 3
    assert examples[2].slots == ["O", "O", "O"]
    assert examples[2].unaligned == "tag count mismatch: 3 tokens, 2 slot tags"
    assert report.unaligned == [{"source": f"{path}:4", "reason": "tag count mismatch: 3 tokens, 2 slot tags"}]
    with pytest.raises(DataError, match=rf"^{path}:4: tag count mismatch: 3 tokens, 2 slot tags$"):
        list(multiatis.read_file(path, "en", strict_tags=True))


@pytest.mark.parametrize("header,message", [
    (b"\xef\xbb\xbfid\tutterance\tslot_labels\tintent\n", "byte-order mark"),
    (b"id\tutterance\tintent\tslot_labels\n", "expected the tab-separated header"),
    (b"", "expected the tab-separated header"),  # first data row where the header should be
])
def test_bad_header_is_fatal_even_when_skipping(tmp_path, header, message):
    path = _write(tmp_path, GOOD, header=header)
    with pytest.raises(DataError) as info:
        list(multiatis.read_file(path, "en", skip_bad_rows=True))
    assert str(info.value).startswith(f"{path}:1: ") and message in str(info.value)


def test_empty_file(tmp_path):
    path = _write(tmp_path, b"", header=b"")
    with pytest.raises(DataError, match=r":1: empty file"):
        list(multiatis.read_file(path, "en"))


def test_read_finds_split_aliases_and_languages(tmp_path):
    _write(tmp_path, GOOD, name="train_EN.tsv")
    _write(tmp_path, GOOD, name="dev_DE.tsv")
    _write(tmp_path, GOOD, name="dev_EN.tsv")
    (tmp_path / "notes.txt").write_text("not data")
    assert multiatis.available_languages(str(tmp_path)) == ["de", "en"]
    assert [e.language for e in multiatis.read(str(tmp_path), "eval")] == ["de", "de", "en", "en"]
    assert {e.language for e in multiatis.read(str(tmp_path), "dev", languages="EN")} == {"en"}
    with pytest.raises(ValueError, match="available: en"):
        multiatis.read(str(tmp_path), "train", languages=["de"])
    with pytest.raises(FileNotFoundError, match="test_<LANG>.tsv"):
        multiatis.read(str(tmp_path), "test")
    assert multiatis.available_languages(str(tmp_path / "missing")) == []


# Data rows per split and language, from ../shared/datasets/README.md and multiatis/SOURCE.txt.
REAL_COUNTS = {lang: (4488, 490) for lang in ("en", "de", "es", "fr", "pt", "zh", "ja")}
REAL_COUNTS.update(hi=(1495, 160), tr=(626, 60))
# Translated rows of the published files whose tag count differs from their (space) token count;
# splitting on U+00A0 as well would raise fr/train from 13 to 75.
UNALIGNED = {("de", "train"): 1, ("es", "train"): 3, ("fr", "train"): 13, ("ja", "train"): 1,
             ("pt", "train"): 10, ("pt", "dev"): 1, ("zh", "train"): 1}


def test_real_files_every_split_and_language(datasets_dir):
    data_dir = str(datasets_dir / "multiatis")
    assert multiatis.available_languages(data_dir) == sorted(REAL_COUNTS)
    for lang, (train, dev) in REAL_COUNTS.items():
        for split, expected in (("train", train), ("dev", dev)):
            report = ReadReport()
            n = 0
            for ex in multiatis.read(data_dir, split, languages=[lang], report=report):
                n += 1
                assert len(ex.slots) == len(ex.tokens) == len(ex.offsets)
                assert ex.language == lang
            assert (n, report.rows, report.skipped) == (expected, expected, []), (lang, split)
            assert len(report.unaligned) == UNALIGNED.get((lang, split), 0), (lang, split)
