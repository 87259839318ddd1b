"""The offline TFDS builder for MTOP: built from a tiny manual folder written by the demo, no network."""
import os
import shutil
import socket

import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core.utils import gcs_utils

from prado_tiny.data import demo, mtop
from prado_tiny.data import tfds_mtop
from prado_tiny.data.tfds_mtop import PradoMtop, from_features

ROWS = 25  # per file: keeps each build well under a second


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or GCS lookup fails the test; GCS is even switched *on* in TFDS, so
    only the builder's own precautions keep it from being asked."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(gcs_utils, "_is_gcs_disabled", False)
    monkeypatch.setattr(gcs_utils, "exists", refuse)


@pytest.fixture
def manual_dir(tmp_path):
    """The demo in MTOP's layout for en and th, cut to ROWS rows a file; th has no test split."""
    root = tmp_path / "manual"
    demo.write(str(root), languages="en,th")
    for path in root.rglob("*.txt"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[:ROWS]
        path.write_text("".join(lines), encoding="utf-8")
    os.remove(root / "th" / "test.txt")
    return root


def _key(ex):
    d = ex.to_dict()
    d.pop("source")
    return d


def _examples(ds):
    return sorted((_key(from_features(x)) for x in tfds.as_numpy(ds)), key=lambda d: d["id"])


def test_configs_and_features():
    names = [c.name for c in PradoMtop.BUILDER_CONFIGS]
    assert names == ["all", "en", "de", "es", "fr", "hi", "th"]
    assert PradoMtop.name == "prado_mtop"
    assert "train.txt" in PradoMtop.MANUAL_DOWNLOAD_INSTRUCTIONS
    keys = set(tfds_mtop.features().keys())
    assert {"id", "language", "utterance", "tokens", "token_offsets", "intent", "slots", "parse"} <= keys


def test_tfds_load_builds_offline_and_matches_the_reader(manual_dir, tmp_path, no_network):
    data_dir = str(tmp_path / "tfds")
    ds, info = tfds.load(
        "prado_mtop/th", data_dir=data_dir, with_info=True,
        download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))})
    # Only the splits whose files exist.
    assert set(ds) == {"train", "validation"}
    assert info.splits["train"].num_examples == ROWS
    for tfds_split, split in (("train", "train"), ("validation", "dev")):
        want = sorted((_key(e) for e in mtop.read(str(manual_dir), split, languages="th")), key=lambda d: d["id"])
        assert _examples(ds[tfds_split]) == want
    got = _examples(ds["train"])
    assert got[0]["language"] == "th" and got[0]["parse"].startswith("[IN:")
    assert all(len(d["offsets"]) == len(d["tokens"]) == len(d["slots"]) for d in got)

    # `all` holds every language present; test exists for en only.
    every = tfds_mtop.load("all", manual_dir=str(manual_dir), data_dir=data_dir)
    assert set(every) == {"train", "validation", "test"}
    assert {d["language"] for d in _examples(every["train"])} == {"en", "th"}
    assert {d["language"] for d in _examples(every["test"])} == {"en"}

    # Prepared data is reused: the manual folder is no longer needed.
    shutil.rmtree(manual_dir)
    again = tfds_mtop.load("th", manual_dir=str(manual_dir), data_dir=data_dir, split="validation")
    assert len(_examples(again)) == ROWS


def test_missing_language_names_the_manual_layout(manual_dir, tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="language 'hi'.*languages present: en, th"):
        tfds_mtop.load("hi", manual_dir=str(manual_dir), data_dir=str(tmp_path / "tfds"))
