"""Tests for prado_tiny.data.seqio (ATIS/SNIPS layout): lockstep reading, bad rows, real files."""
import pytest

from prado_tiny.data import seqio
from prado_tiny.data.example import DataError, ReadReport

SEQ_IN = b"flights from boston to denver\nfares to dallas\n"
SEQ_OUT = b"O O B-fromloc.city_name O B-toloc.city_name\nO O B-toloc.city_name\n"
LABEL = b"atis_flight\natis_flight#atis_airfare\n"


def _split(tmp_path, seq_in=SEQ_IN, seq_out=SEQ_OUT, label=LABEL, name="train"):
    split_dir = tmp_path / name
    split_dir.mkdir()
    (split_dir / "seq.in").write_bytes(seq_in)
    (split_dir / "seq.out").write_bytes(seq_out)
    (split_dir / "label").write_bytes(label)
    return split_dir


def test_reads_three_files_in_lockstep(tmp_path):
    split_dir = _split(tmp_path)
    report = ReadReport()
    first, second = seqio.read(str(tmp_path), "train", report=report)
    assert first.tokens == ["flights", "from", "boston", "to", "denver"]
    assert all(first.utterance[s:e] == t for t, (s, e) in zip(first.tokens, first.offsets))
    assert first.slots[4] == "B-toloc.city_name" and first.intent == "atis_flight"
    assert first.language == "en" and first.source == f"{split_dir / 'seq.in'}:1"
    assert second.intents == ("atis_flight", "atis_airfare")
    assert report.rows == 2 and len(report.files) == 3


def test_trailing_spaces_are_not_tokens(tmp_path):
    # The published SNIPS files end many seq.in and seq.out lines with a space.
    _split(tmp_path, seq_in=b"play jazz \n", seq_out=b"O B-genre \n", label=b"PlayMusic\n")
    (ex,) = seqio.read(str(tmp_path), "train")
    assert ex.tokens == ["play", "jazz"] and ex.slots == ["O", "B-genre"] and ex.unaligned is None


@pytest.mark.parametrize("files,bad_file,line,message", [
    ({"seq.in": SEQ_IN + b"to \xff dallas\n", "seq.out": SEQ_OUT + b"O O B-x\n", "label": LABEL + b"a\n"},
     "seq.in", 3, "invalid UTF-8"),
    ({"seq.in": b"\xef\xbb\xbf" + SEQ_IN}, "seq.in", 1, "byte-order mark"),
    ({"label": b"atis_flight\r\natis_flight\n"}, "label", 1, "CRLF"),
    ({"seq.in": b"flights from boston to denver\n\n"}, "seq.in", 2, "empty utterance"),
    ({"seq.out": b"O O B-fromloc.city_name O B-toloc.city_name\n \n"}, "seq.out", 2, "empty line"),
    ({"label": b"atis_flight\n\n"}, "label", 2, "empty intent label"),
    ({"seq.out": b"O O B-fromloc.city_name O B-toloc.city_name\nO O Btoloc\n"}, "seq.out", 2,
     "malformed slot tag 'Btoloc'"),
])
def test_malformed_rows_name_file_and_line(tmp_path, files, bad_file, line, message):
    contents = {"seq.in": SEQ_IN, "seq.out": SEQ_OUT, "label": LABEL, **files}
    split_dir = _split(tmp_path, contents["seq.in"], contents["seq.out"], contents["label"])
    with pytest.raises(DataError) as info:
        list(seqio.read(str(tmp_path), "train"))
    assert str(info.value).startswith(f"{split_dir / bad_file}:{line}: ")
    assert message in str(info.value)
    report = ReadReport()
    kept = list(seqio.read(str(tmp_path), "train", report=report, skip_bad_rows=True))
    assert [r["source"] for r in report.skipped] == [f"{split_dir / bad_file}:{line}"]
    assert len(kept) == report.rows == contents["seq.in"].count(b"\n") - 1


@pytest.mark.parametrize("short", ["seq.in", "seq.out", "label"])
def test_a_file_ending_early_is_an_error_naming_it(tmp_path, short):
    contents = {"seq.in": SEQ_IN, "seq.out": SEQ_OUT, "label": LABEL}
    contents[short] = contents[short].split(b"\n")[0] + b"\n"  # one line instead of two
    split_dir = _split(tmp_path, contents["seq.in"], contents["seq.out"], contents["label"])
    for skip in (False, True):  # never skippable: every later row would be paired wrongly
        with pytest.raises(DataError) as info:
            list(seqio.read(str(tmp_path), "train", skip_bad_rows=skip))
        assert str(info.value).startswith(f"{split_dir / short}:2: {short} ends after line 1")


def test_tag_count_mismatch_is_kept_as_unaligned_or_raised_when_strict(tmp_path):
    split_dir = _split(tmp_path, seq_out=b"O O B-fromloc.city_name O\nO O B-toloc.city_name\n")
    report = ReadReport()
    first, _ = seqio.read(str(tmp_path), "train", report=report)
    assert first.slots == ["O"] * 5 and first.unaligned == "tag count mismatch: 5 tokens, 4 slot tags"
    assert report.unaligned == [{"source": f"{split_dir / 'seq.in'}:1", "reason": first.unaligned}]
    with pytest.raises(DataError, match=r"seq\.out:1: tag count mismatch"):
        list(seqio.read_dir(str(split_dir), strict_tags=True))


def test_split_names_languages_and_missing_files(tmp_path):
    _split(tmp_path, name="valid")
    assert seqio.available_languages(str(tmp_path)) == ["en"]
    assert len(list(seqio.read(str(tmp_path), "dev"))) == 2
    assert len(list(seqio.read(str(tmp_path), "valid", languages=["EN"]))) == 2
    with pytest.raises(ValueError, match="no data for language.* de; available: en"):
        seqio.read(str(tmp_path), "dev", languages="en,de")
    with pytest.raises(FileNotFoundError, match="train/seq.in"):
        seqio.read(str(tmp_path), "train")
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "seq.in").write_text("x\n")
    with pytest.raises(FileNotFoundError, match="missing seq.out, label"):
        seqio.read(str(tmp_path), "test")
    assert seqio.available_languages(str(tmp_path / "test")) == []


@pytest.mark.parametrize("dataset,split,expected", [
    ("atis", "train", 4478), ("atis", "valid", 500), ("atis", "dev", 500),
    ("snips", "train", 13084), ("snips", "valid", 700),
])
def test_real_files(datasets_dir, dataset, split, expected):
    report = ReadReport()
    n = 0
    for ex in seqio.read(str(datasets_dir / dataset), split, report=report):
        n += 1
        assert len(ex.tokens) == len(ex.slots) > 0 and ex.intent
    assert (n, report.rows, report.unaligned, report.skipped) == (expected, expected, [], [])
