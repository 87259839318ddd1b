"""The offline TFDS builder for MultiATIS++: built from hand-written TSV files, no network."""
import socket

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from prado_tiny.data import multiatis
from prado_tiny.data import tfds_multiatis
from prado_tiny.data.tfds_mtop import from_features
from prado_tiny.data.tfds_multiatis import PradoMultiatis


HEADER = "id\tutterance\tslot_labels\tintent\n"
FILES = {
    "train_EN.tsv": HEADER
    + "1\tshow flights from boston to denver\tO O O B-fromloc.city_name O B-toloc.city_name\tatis_flight\n"
    + "2\twhat is the fare from new york to dallas\tO O O O O B-fromloc.city_name I-fromloc.city_name O "
      "B-toloc.city_name\tatis_airfare\n"
    + "3\tflights and fares to atlanta\tO O O O B-toloc.city_name\tatis_flight#atis_airfare\n"
    + "4\twhat does ap57 mean\tO O B-restriction_code O\tatis_abbreviation\n",
    "dev_EN.tsv": HEADER
    + "1\tlist flights to pittsburgh\tO O O B-toloc.city_name\tatis_flight\n"
    + "2\twhich airlines fly to boston\tO O O O B-toloc.city_name\tatis_airline\n",
    "train_DE.tsv": HEADER
    + "1\tzeige flüge von boston nach denver\tO O O B-fromloc.city_name O B-toloc.city_name\tatis_flight\n"
    + "2\twas kostet ein flug nach dallas\tO O O O O B-toloc.city_name\tatis_airfare\n",
}


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or GCS lookup fails the test, with GCS switched on in TFDS."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", False)
    monkeypatch.setattr(gcs_utils, "exists", refuse)


@pytest.fixture
def manual_dir(tmp_path):
    root = tmp_path / "manual"
    root.mkdir()
    for name, text in FILES.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


def _examples(ds):
    out = [from_features(x).to_dict() for x in tfds.as_numpy(ds)]
    for d in out:
        d.pop("source")
    return sorted(out, key=lambda d: (d["language"], d["id"]))


def _reader(manual_dir, split, languages):
    out = [e.to_dict() for e in multiatis.read(str(manual_dir), split, languages=languages)]
    for d in out:
        d.pop("source")
    return sorted(out, key=lambda d: (d["language"], d["id"]))


def test_configs():
    assert [c.name for c in PradoMultiatis.BUILDER_CONFIGS] == [
        "all", "en", "de", "es", "fr", "pt", "zh", "ja", "hi", "tr"]
    assert PradoMultiatis.name == "prado_multiatis"
    assert "train_EN.tsv" in PradoMultiatis.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_tfds_load_builds_offline_and_matches_the_reader(manual_dir, tmp_path, no_network):
    data_dir = str(tmp_path / "tfds")
    ds = tfds.load("prado_multiatis/en", data_dir=data_dir, download_and_prepare_kwargs={
        "download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))})
    assert set(ds) == {"train", "validation"}  # no test files
    assert _examples(ds["train"]) == _reader(manual_dir, "train", "en")
    assert _examples(ds["validation"]) == _reader(manual_dir, "dev", "en")
    train = _examples(ds["train"])
    assert [d["intent"] for d in train] == ["atis_flight", "atis_airfare", "atis_flight#atis_airfare",
                                            "atis_abbreviation"]
    assert train[1]["tokens"][5:7] == ["new", "york"] and train[1]["offsets"][5] == [22, 25]
    assert all(d["parse"] is None and d["domain"] is None for d in train)

    every = tfds_multiatis.load("all", manual_dir=str(manual_dir), data_dir=data_dir)
    assert set(every) == {"train", "validation"}
    assert _examples(every["train"]) == _reader(manual_dir, "train", None)
    assert {d["language"] for d in _examples(every["validation"])} == {"en"}


def test_missing_language(manual_dir, tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="language 'zh'.*languages present: de, en"):
        tfds_multiatis.load("zh", manual_dir=str(manual_dir), data_dir=str(tmp_path / "tfds"))
