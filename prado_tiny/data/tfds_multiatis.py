"""TFDS builder for MultiATIS++, prepared offline from a folder of the published TSV files.

MultiATIS++ is distributed by the LDC (LDC2021T04), so TFDS cannot download it: put the files in a
folder, point `manual_dir` at it, and `tfds.load` prepares TFRecords with
`prado_tiny.data.multiatis` (the toolkit's reader, so TFDS examples equal reader examples):

    import prado_tiny.data.tfds_multiatis as tfds_multiatis
    ds = tfds_multiatis.load("en", manual_dir="../shared/datasets/multiatis", data_dir="/tmp/tfds",
                             split="validation")

or `tfds.load("prado_multiatis/en", ...)` after importing this module (see `tfds_mtop` for the
arguments). Configs: one per language (`en de es fr pt zh ja hi tr`) and `all`. Splits: `train`,
`validation` (`dev_<LANG>.tsv`) and `test`, each only where the files exist.

Features are those of `tfds_mtop.features()`; MultiATIS++ has no parse and no domain, so `parse`
and `domain` are empty strings, and intents keep multi-labels joined by `#`. Nothing here touches
the network (see `tfds_mtop.OfflineBuilder`).
"""
from __future__ import annotations

import tensorflow_datasets as tfds

from prado_tiny.data import multiatis
from prado_tiny.data.tfds_mtop import OfflineBuilder, load_builder


class PradoMultiatis(OfflineBuilder):
    """MultiATIS++ (Xu et al., 2020) from the published TSV files in a manual directory."""

    READER = multiatis
    LANGUAGES = ("en", "de", "es", "fr", "pt", "zh", "ja", "hi", "tr")
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = OfflineBuilder.make_configs(LANGUAGES, "MultiATIS++")
    DESCRIPTION = (
        "MultiATIS++: the ATIS flight-information queries in nine languages, with intents (multi-intents "
        "joined by '#') and BIO slot tags over the dataset's own space-separated tokens, read by "
        "prado_tiny.data.multiatis.")
    HOMEPAGE = "https://github.com/amazon-science/multiatis"
    CITATION = """@inproceedings{xu-etal-2020-end,
  title = {End-to-End Slot Alignment and Recognition for Cross-Lingual {NLU}},
  author = {Xu, Weijia and Haider, Batool and Mansour, Saab},
  booktitle = {Proceedings of EMNLP 2020},
  year = {2020}
}"""
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Put the MultiATIS++ TSV files (LDC2021T04) in the manual directory, named as they are published:
`<manual_dir>/train_EN.tsv`, `dev_EN.tsv` (the validation split), `test_EN.tsv`, and the same for DE,
ES, FR, PT, ZH, JA, HI and TR. Each file starts with the header `id<TAB>utterance<TAB>slot_labels<TAB>intent`.
Missing splits are left out.
"""


def load(language: str = "all", manual_dir: str = "", data_dir: str = "", split=None, **kwargs):
    """`tfds.load("prado_multiatis/<language>")`, offline, preparing from `manual_dir` if needed."""
    if not manual_dir or not data_dir:
        raise ValueError("load() needs manual_dir (the MultiATIS++ files) and data_dir (where TFDS writes)")
    return load_builder(PradoMultiatis.name, language, manual_dir, data_dir, split=split, **kwargs)
