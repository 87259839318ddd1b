"""Reproduces the embedding-compression figures of the README (issue 7): train, export, report.

Per dataset: the uncompressed BiLSTM reference and its task-aware compressed twins (the same
model with its table as compositional codes, `--embedding=codes`) are trained, exported and
evaluated by `reproduce_mixer.py`'s runs (the user commands `prado-train`, `prado-export`,
`prado-eval`), then one `prado-compress` command compresses the reference's table offline with
every baseline method, scores every row, and places the projection models on the same size axis.
A run already trained is not trained again.

Usage (from the repository root):
  python benchmarks/reproduce_compression.py [--datasets_to_run mtop,atis,snips]
      [--out_dir runs/repro] [--datasets ../shared/datasets] [--no_train]

Writes OUT_DIR/compress_<dataset>.{json,md,png} and OUT_DIR/compression.md (all datasets).
--no_train reports only on the model folders that exist (projection models that are missing
are left off the size axis; a missing reference or compressed model is an error).
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reproduce_mixer as rm  # noqa: E402

# dataset: (split, degradation metric, reference run, task-aware runs, projection runs)
PLAN = {
    # The continued reference (8 more epochs, as the codes get) and codes started from it are
    # the equal-training comparison; the degradation column is against mtop_bilstm.
    "mtop": ("eval", "exact_match", "mtop_bilstm",
             ["mtop_bilstm_codes8", "mtop_bilstm_codes16", "mtop_bilstm_continued_codes8",
              "mtop_bilstm_continued_codes16"],
             ["mtop_bilstm_continued", "mtop_xsmall", "mtop_base", "mtop_pqrnn"]),
    "atis": ("dev", "slot_f1", "atis_bilstm", ["atis_bilstm_codes8"], ["atis"]),
    "snips": ("dev", "slot_f1", "snips_bilstm", ["snips_bilstm_codes8"], ["snips"]),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets_to_run", default=",".join(PLAN))
    ap.add_argument("--out_dir", default=os.path.join(rm.REPO, "runs", "repro"))
    ap.add_argument("--datasets", default=os.path.join(os.path.dirname(rm.REPO), "shared", "datasets"))
    ap.add_argument("--no_train", action="store_true",
                    help="report on existing model folders only; train nothing")
    args = ap.parse_args()
    out_dir, datasets = os.path.abspath(args.out_dir), os.path.abspath(args.datasets)
    names = args.datasets_to_run.split(",")
    for name in names:
        if name not in PLAN:
            raise SystemExit(f"unknown dataset {name!r}; known: {', '.join(PLAN)}")
    sections = []
    for name in names:
        split, metric, ref, codes, compare = PLAN[name]
        if not args.no_train:
            for run in [ref, *compare, *codes]:  # compare first: codes may start from one
                rm.record(run, rm.one(run, out_dir, datasets), out_dir)
        folders = {r: os.path.join(out_dir, r) for r in [ref, *codes, *compare]}
        for r in [ref, *codes]:
            if not os.path.isdir(folders[r]):
                raise SystemExit(f"{folders[r]}: missing; run without --no_train to train it")
        present = [folders[r] for r in compare if os.path.exists(os.path.join(folders[r], "model.tflite"))]
        prefix = os.path.join(out_dir, f"compress_{name}")
        cmd = [rm.tool("prado-compress"), f"--reference={folders[ref]}",
               f"--compressed={','.join(folders[r] for r in codes)}", f"--dataset={name}",
               f"--data_dir={os.path.join(datasets, name)}", f"--split={split}", f"--metric={metric}",
               f"--out={prefix}"] + ([f"--compare={','.join(present)}"] if present else [])
        print("$ " + " ".join(cmd), flush=True)
        subprocess.run(cmd, cwd=rm.REPO, check=True)
        with open(prefix + ".json", encoding="utf-8") as f:
            meta = json.load(f)
        with open(prefix + ".md", encoding="utf-8") as f:
            sections.append(f"## {meta['title']}\n\n{meta['date']}, {meta['machine']}; degradation of "
                            f"{metric.replace('_', ' ')}; plot {os.path.basename(prefix)}.png\n\n"
                            + f.read())
    path = os.path.join(out_dir, "compression.md")
    with open(path, "w", encoding="utf-8") as f:
        f.write("# Embedding-table compression against degradation\n\n" + "\n".join(sections))
    print(f"written {path}")


if __name__ == "__main__":
    main()
