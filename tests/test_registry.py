"""Tests for prado_tiny.data.registry: the name -> reader map and its error messages."""
import inspect

import pytest

from prado_tiny import common_flags
from prado_tiny.data import registry
from prado_tiny.data.example import ReadReport
from prado_tiny.data.registry import DatasetError, read_dataset


def test_names_match_the_cli_flag_and_every_reader_has_the_interface():
    assert registry.NAMES == common_flags.DATASETS == ("mtop", "multiatis", "atis", "snips", "massive", "demo")
    for name in registry.NAMES:
        module = registry.reader(name)
        params = list(inspect.signature(module.read).parameters)
        assert params[:5] == ["data_dir", "split", "languages", "report", "skip_bad_rows"], name
        assert callable(module.available_languages), name


def test_unknown_dataset_lists_the_names():
    with pytest.raises(DatasetError, match="unknown dataset 'atis2'; known datasets: mtop, multiatis, atis, "
                                           "snips, massive, demo"):
        read_dataset("atis2", "/tmp", "train")


@pytest.mark.parametrize("name", ["mtop", "multiatis", "atis", "snips", "massive"])
def test_missing_data_dir_says_what_to_pass(name):
    with pytest.raises(DatasetError, match=rf"dataset '{name}' needs a data folder \(--data_dir\); it should hold"):
        read_dataset(name, None, "train")


def test_data_dir_that_does_not_exist_or_is_a_file(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        read_dataset("multiatis", str(tmp_path / "nope"), "train")
    (tmp_path / "f.tsv").write_text("x")
    with pytest.raises(DatasetError, match="not a folder.*train_EN.tsv"):
        read_dataset("multiatis", str(tmp_path / "f.tsv"), "train")


@pytest.mark.parametrize("name,expected", [
    ("multiatis", "<split>_<LANG>.tsv"),
    ("atis", "seq.in, seq.out and label"),
    ("snips", "seq.in, seq.out and label"),
    ("mtop", "<split>.txt"),
    ("massive", "jsonl"),
])
def test_folder_of_the_wrong_kind_says_what_was_expected(tmp_path, name, expected):
    (tmp_path / "readme.md").write_text("nothing here")
    with pytest.raises(DatasetError) as info:
        read_dataset(name, str(tmp_path), "train")
    assert f"does not look like the {name} dataset: expected" in str(info.value)
    assert expected in str(info.value)


def test_wrong_dataset_for_a_real_folder_hints_at_the_right_one(datasets_dir):
    with pytest.raises(DatasetError, match="try --dataset=multiatis"):
        read_dataset("atis", str(datasets_dir / "multiatis"), "train")


def test_unknown_language_lists_available_ones(datasets_dir):
    with pytest.raises(DatasetError, match="unknown language.* ko for dataset multiatis .*available: "
                                           "de, en, es, fr, hi, ja, pt, tr, zh"):
        read_dataset("multiatis", str(datasets_dir / "multiatis"), "dev", languages=["en", "ko"])
    with pytest.raises(DatasetError, match="available: en"):
        read_dataset("snips", str(datasets_dir / "snips"), "dev", languages="de")
    with pytest.raises(DatasetError, match="not a language code"):
        read_dataset("snips", str(datasets_dir / "snips"), "dev", languages="e1")


def test_unknown_split(datasets_dir):
    with pytest.raises(DatasetError, match="unknown split 'training'"):
        read_dataset("atis", str(datasets_dir / "atis"), "training")


def test_errors_come_before_the_first_row_and_reads_are_lazy(datasets_dir, tmp_path):
    # read_dataset validates eagerly; a malformed row is only met while iterating.
    (tmp_path / "train_EN.tsv").write_bytes(b"id\tutterance\tslot_labels\tintent\n1\t\t\tx\n")
    examples = read_dataset("multiatis", str(tmp_path), "train")
    with pytest.raises(ValueError, match=r"train_EN\.tsv:2: empty utterance"):
        next(iter(examples))


@pytest.mark.parametrize("name,split,languages,expected", [
    ("multiatis", "dev", "EN,de", 980),
    ("multiatis", "eval", ["tr"], 60),
    ("atis", "dev", None, 500),
    ("snips", "valid", ["en"], 700),
])
def test_reads_real_data_through_the_registry(datasets_dir, name, split, languages, expected):
    report = ReadReport()
    n = sum(1 for _ in read_dataset(name, str(datasets_dir / name), split, languages=languages, report=report))
    assert n == report.rows == expected


def test_demo_needs_no_data_dir():
    report = ReadReport()
    examples = read_dataset("demo", None, "train", report=report)
    first = next(iter(examples))
    assert first.tokens and len(first.tokens) == len(first.slots)
    assert registry.available_languages("demo", None)
