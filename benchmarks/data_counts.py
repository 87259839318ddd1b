"""Rows and unaligned rows of every dataset, split and language under a datasets folder.

Usage: python benchmarks/data_counts.py [DATASETS_DIR]   (default ../shared/datasets)
Prints the Markdown table that BUILD.md quotes, and the reasons for the unaligned rows.
"""
import collections
import os
import sys

from prado_tiny.data import registry
from prado_tiny.data.example import ReadReport

# (dataset name, folder under DATASETS_DIR, splits as the dataset names them)
SOURCES = [
    ("mtop", "mtop", ("train", "eval")),
    ("mtop", "mtop_official", ("eval",)),
    ("multiatis", "multiatis", ("train", "dev")),
    ("atis", "atis", ("train", "valid")),
    ("snips", "snips", ("train", "valid")),
    ("massive", "massive", ("train", "dev")),
    ("massive", "massive_official", ("train", "dev")),
]


def main(root):
    print("| dataset (folder) | split | language | rows | unaligned |")
    print("|---|---|---|---:|---:|")
    reasons = collections.Counter()
    for name, folder, splits in SOURCES:
        data_dir = os.path.join(root, folder)
        for split in splits:
            report = ReadReport()
            per_lang = collections.Counter()
            bad = collections.Counter()
            for ex in registry.read_dataset(name, data_dir, split, report=report):
                per_lang[ex.language] += 1
                if ex.unaligned:
                    bad[ex.language] += 1
                    reasons[(name, ex.unaligned.split(":")[0])] += 1
            for lang in sorted(per_lang):
                print(f"| {name} ({folder}) | {split} | {lang} | {per_lang[lang]} | {bad[lang]} |")
            assert not report.skipped, report.skipped[:3]
    print()
    for (name, reason), n in sorted(reasons.items()):
        print(f"- {name}: {n} rows `{reason}`")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets"))
