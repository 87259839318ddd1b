"""TFDS builder for MTOP, prepared offline from a folder of the published files.

MTOP cannot be downloaded by TFDS (its licence asks for attribution and the official archive sits
behind a form), so this builder is a manual-download one: put the files in a folder, point
`manual_dir` at it, and `tfds.load` prepares TFRecords from them with `prado_tiny.data.mtop` (the
same reader the toolkit uses everywhere, so TFDS examples equal reader examples):

    import prado_tiny.data.tfds_mtop as tfds_mtop
    ds = tfds_mtop.load("de", manual_dir="../shared/datasets/mtop", data_dir="/tmp/tfds", split="train")

or, with TFDS directly (importing this module registers the builder as `prado_mtop`):

    tfds.load("prado_mtop/de", data_dir=..., try_gcs=False,
              download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(manual_dir=...)})

Configs: one per MTOP language (`en`, `de`, `es`, `fr`, `hi`, `th`) and `all` (every language
folder present). Splits: `train`, `validation` (MTOP's `eval.txt`) and `test`, each only where the
files exist (the shared datasets withhold test).

Nothing here touches the network: the builders never look up dataset info on GCS (even if GCS
access is enabled in TFDS) and always prepare with `try_download_gcs=False`. The shared base
class and the feature conversion live here and are reused by `tfds_multiatis`.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from prado_tiny.data import mtop
from prado_tiny.data.example import Example

# TFDS split name -> the name the readers are asked for.
TFDS_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


def features() -> tfds.features.FeaturesDict:
    """The features of one example, common to both builders."""
    return tfds.features.FeaturesDict({
        "id": tfds.features.Text(),
        "language": tfds.features.Text(),
        "utterance": tfds.features.Text(),
        "tokens": tfds.features.Sequence(tfds.features.Text()),
        # (start, end) character offsets of each token into the utterance, end exclusive.
        "token_offsets": tfds.features.Tensor(shape=(None, 2), dtype=np.int32),
        "intent": tfds.features.Text(),
        "slots": tfds.features.Sequence(tfds.features.Text()),
        # The decoupled parse, or "" where the dataset has none (MultiATIS++).
        "parse": tfds.features.Text(),
        "domain": tfds.features.Text(),
        # "" or why some slot could not be placed on the tokens (those tokens are tagged O).
        "unaligned": tfds.features.Text(),
    })


def to_features(ex: Example) -> dict:
    """An `Example` as the builders' feature dict."""
    return {
        "id": ex.id, "language": ex.language, "utterance": ex.utterance, "tokens": list(ex.tokens),
        "token_offsets": np.asarray(ex.offsets, np.int32).reshape(-1, 2),
        "intent": ex.intent, "slots": list(ex.slots), "parse": ex.parse or "",
        "domain": ex.domain or "", "unaligned": ex.unaligned or "",
    }


def from_features(d: dict) -> Example:
    """A TFDS example (as NumPy, e.g. from `tfds.as_numpy`) back as an `Example` (no source)."""
    text = lambda v: v.decode("utf-8") if isinstance(v, bytes) else str(v)  # noqa: E731
    return Example(
        id=text(d["id"]), language=text(d["language"]), utterance=text(d["utterance"]),
        tokens=[text(t) for t in d["tokens"]],
        offsets=[(int(s), int(e)) for s, e in np.asarray(d["token_offsets"]).reshape(-1, 2)],
        intent=text(d["intent"]), slots=[text(t) for t in d["slots"]],
        parse=text(d["parse"]) or None, domain=text(d["domain"]) or None,
        unaligned=text(d["unaligned"]) or None)


class _NoGcsInfo(tfds.core.DatasetInfo):
    """DatasetInfo that never fetches pre-computed info from the public GCS bucket: these
    datasets are not there, and a lookup would be a network call."""

    def initialize_from_bucket(self) -> None:
        return None


class OfflineBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the manual-directory builders: reads with a prado_tiny reader, never the network.

    Subclasses set `READER` (a module with `read` and `available_languages`), `LANGUAGES`,
    `DESCRIPTION`, `HOMEPAGE`, `CITATION` and `MANUAL_DOWNLOAD_INSTRUCTIONS`.
    """

    READER = None
    LANGUAGES: Tuple[str, ...] = ()
    DESCRIPTION = ""
    HOMEPAGE = ""
    CITATION = ""

    @classmethod
    def make_configs(cls, languages: Iterable[str], dataset: str) -> List[tfds.core.BuilderConfig]:
        configs = [tfds.core.BuilderConfig(name="all", description=f"Every language of {dataset} present "
                                                                  "in the manual directory.")]
        configs += [tfds.core.BuilderConfig(name=lang, description=f"{dataset}, language {lang}.")
                    for lang in languages]
        return configs

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # TFDS 4.9.10 finds a builder's source through `importlib_resources`, a package it does not
        # declare as a dependency (ModuleNotFoundError on the pinned stack). The file is all it needs.
        return epath.Path(inspect.getfile(cls))

    def _info(self) -> tfds.core.DatasetInfo:
        return _NoGcsInfo(builder=self, description=self.DESCRIPTION, features=features(),
                          homepage=self.HOMEPAGE, citation=self.CITATION)

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs) -> None:
        # A prepared copy on GCS does not exist; never ask for one.
        config = download_config or tfds.download.DownloadConfig()
        config = dataclasses.replace(config, try_download_gcs=False)
        return super().download_and_prepare(download_dir=download_dir, download_config=config, **kwargs)

    def _languages(self) -> Optional[List[str]]:
        name = self.builder_config.name
        return None if name == "all" else [name]

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> Dict[str, Iterator]:
        manual_dir = os.fspath(dl_manager.manual_dir)
        languages = self._languages()
        splits = {}
        for tfds_split, split in TFDS_SPLITS.items():
            try:
                # The readers find their files eagerly and read rows lazily: a cheap existence check.
                self.READER.read(manual_dir, split, languages=languages)
            except (FileNotFoundError, ValueError):
                continue
            splits[tfds_split] = self._generate_examples(manual_dir, split, languages)
        if not splits:
            present = ", ".join(self.READER.available_languages(manual_dir)) or "none"
            want = "any language" if languages is None else f"language {languages[0]!r}"
            raise FileNotFoundError(
                f"{manual_dir}: no {self.name} files for {want} (languages present: {present}).\n"
                + self.MANUAL_DOWNLOAD_INSTRUCTIONS)
        return splits

    def _generate_examples(self, manual_dir: str, split: str, languages: Optional[List[str]]):
        # Keys: language and row position, unique even where a dataset repeats an id.
        for i, ex in enumerate(self.READER.read(manual_dir, split, languages=languages)):
            yield f"{ex.language}:{i:07d}", to_features(ex)


def offline_download_config(manual_dir: str, **kwargs) -> tfds.download.DownloadConfig:
    """A DownloadConfig that reads `manual_dir` and never tries GCS."""
    return tfds.download.DownloadConfig(manual_dir=os.fspath(manual_dir), try_download_gcs=False, **kwargs)


def load_builder(name: str, config: str, manual_dir: str, data_dir: str, split=None, **kwargs):
    """`tfds.load(f"{name}/{config}")` offline: prepares from `manual_dir` into `data_dir` if
    needed. Keyword arguments go to `tfds.load` (`as_supervised` does not apply)."""
    return tfds.load(f"{name}/{config}", split=split, data_dir=os.fspath(data_dir), try_gcs=False,
                     download_and_prepare_kwargs={"download_config": offline_download_config(manual_dir)},
                     **kwargs)


class PradoMtop(OfflineBuilder):
    """MTOP (Li et al., 2021) from the published files in a manual directory."""

    READER = mtop
    LANGUAGES = ("en", "de", "es", "fr", "hi", "th")
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 5-column flat and official 8-column files."}
    BUILDER_CONFIGS = OfflineBuilder.make_configs(LANGUAGES, "MTOP")
    DESCRIPTION = (
        "MTOP: a multilingual task-oriented semantic parsing dataset (11 domains, 6 languages). Each "
        "example has the utterance, the toolkit's tokens with character offsets, the top-level intent, "
        "BIO slot tags and the decoupled parse, read by prado_tiny.data.mtop.")
    HOMEPAGE = "https://fb.me/mtop_dataset"
    CITATION = """@inproceedings{li-etal-2021-mtop,
  title = {{MTOP}: A Comprehensive Multilingual Task-Oriented Semantic Parsing Benchmark},
  author = {Li, Haoran and Arora, Abhinav and Chen, Shuohui and Gupta, Anchit and Gupta, Sonal and Mehdad, Yashar},
  booktitle = {Proceedings of EACL 2021},
  year = {2021}
}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the MTOP files in the manual directory, one folder per language, as MTOP publishes them:
`<manual_dir>/<lang>/train.txt`, `eval.txt` (the validation split) and `test.txt`, where <lang> is
en, de, es, fr, hi or th. Either format works: the official 8-column files (from the MTOP archive,
https://fb.me/mtop_dataset) or the 5-column flat form (utterance, flat parse, decoupled parse, domain,
locale). Missing splits are left out. To try the builder without MTOP, write the toolkit's demo data
in this layout: `python -c "from prado_tiny.data import demo; demo.write('DIR')"`.
"""


def load(language: str = "all", manual_dir: str = "", data_dir: str = "", split=None, **kwargs):
    """`tfds.load("prado_mtop/<language>")`, offline, preparing from `manual_dir` if needed."""
    if not manual_dir or not data_dir:
        raise ValueError("load() needs manual_dir (the MTOP files) and data_dir (where TFDS writes)")
    return load_builder(PradoMtop.name, language, manual_dir, data_dir, split=split, **kwargs)
