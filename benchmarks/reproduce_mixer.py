"""Reproduces the pNLP-Mixer and pQRNN figures of the README: train, export, evaluate.

Each run is the three user commands (`prado-train`, `prado-export`, `prado-eval`) with the
shipped flagfiles, so every figure can be re-run by hand. A run whose model folder already holds
a finished training is not trained again (prado-train resumes or reports); an interrupted one
resumes. Results go to OUT_DIR/results.json and a Markdown table OUT_DIR/results.md.

Usage (from the repository root):
  python benchmarks/reproduce_mixer.py [--runs mtop_base,atis] [--out_dir runs/repro]
      [--datasets ../shared/datasets]

Runs (development splits; MTOP's is called `eval`; the test splits are withheld):
  mtop_base, mtop_xsmall    one model for MTOP's six languages
  mtop_base_dropout03       mtop_base with --dropout=0.3
  mtop_pqrnn                pQRNN (configs/pqrnn.flags, twice Base's parameters) on MTOP
  mtop_transformer          the transformer baseline at pQRNN's parameter count
  mtop_bilstm               the BiLSTM baseline with WordPiece embeddings
  mtop_base_from_pqrnn      mtop_base distilled from mtop_pqrnn (run that first): the teacher's
                            logits on the training split (prado-eval --teacher_out), then
                            prado-train --teacher
  multiatis_joint           MultiATIS++ nine languages, a#b intents as joint classes
  multiatis_multi           the same with one sigmoid per atomic intent (--intent_mode=multi_label)
  atis, snips               English
  mtop_bilstm_codes8/16     mtop_bilstm's table as 8 or 16 codebooks of 16 codewords, learned with
                            the task from mtop_bilstm (run that first; issue 7)
  mtop_bilstm_codes8_scratch  the same codes learned from random codes
  mtop_bilstm_continued     mtop_bilstm trained 8 more epochs as the codes are (equal training)
  mtop_bilstm_continued_codes8/16  codes started from mtop_bilstm_continued
  atis_bilstm[_codes8], snips_bilstm[_codes8]   the same on the English sets
"""
import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

COMMON = ["--progress=false"]
RUNS = {
    "mtop_base": (["configs/pnlp_mixer_base.flags", "configs/mtop.flags"],
                  ["--epochs=20", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3", "--warmup_steps=300"], "mtop", "eval"),
    # The same with dropout 0.3 in the mixer blocks and heads (an English-only Base gained 1.3
    # exact-match points from 0.1 to 0.3): does the multilingual model, with 6x the data, gain too?
    "mtop_base_dropout03": (["configs/pnlp_mixer_base.flags", "configs/mtop.flags"],
                            ["--epochs=20", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3",
                             "--warmup_steps=300", "--dropout=0.3"], "mtop", "eval"),
    "mtop_pqrnn": (["configs/pqrnn.flags", "configs/mtop.flags"],
                   ["--epochs=20", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3",
                    "--warmup_steps=300"], "mtop", "eval"),
    "mtop_transformer": (["configs/transformer.flags", "configs/mtop.flags"],
                         ["--epochs=15", "--qat_epochs=2", "--patience=4", "--learning_rate=1e-3",
                          "--warmup_steps=300"], "mtop", "eval"),
    "mtop_bilstm": (["configs/bilstm.flags", "configs/mtop.flags"],
                    ["--epochs=15", "--qat_epochs=2", "--patience=4", "--learning_rate=2e-3",
                     "--warmup_steps=300"], "mtop", "eval"),
    # Embedding compression (issue 7): the BiLSTM's table as compositional codes, M codebooks of
    # K codewords (two 4-bit codes a byte), started from the trained reference ({out} is the
    # output folder): its weights, and its table as residual k-means codes, then 8 more epochs
    # that learn codes, codebooks and model with the task (the last 3 with frozen codes, QAT).
    "mtop_bilstm_codes8": (["configs/bilstm.flags", "configs/mtop.flags"],
                           ["--epochs=8", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3",
                            "--warmup_steps=300", "--embedding=codes", "--num_codebooks=8",
                            "--codebook_size=16", "--init_from={out}/mtop_bilstm"], "mtop", "eval"),
    "mtop_bilstm_codes16": (["configs/bilstm.flags", "configs/mtop.flags"],
                            ["--epochs=8", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3",
                             "--warmup_steps=300", "--embedding=codes", "--num_codebooks=16",
                             "--codebook_size=16", "--init_from={out}/mtop_bilstm"], "mtop", "eval"),
    # The control with equal training: mtop_bilstm's table kept, the same 8 more epochs.
    "mtop_bilstm_continued": (["configs/bilstm.flags", "configs/mtop.flags"],
                              ["--epochs=8", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3",
                               "--warmup_steps=300", "--init_from={out}/mtop_bilstm"], "mtop", "eval"),
    # Compressing the better model: codes started from mtop_bilstm_continued, 8 more epochs.
    "mtop_bilstm_continued_codes16": (["configs/bilstm.flags", "configs/mtop.flags"],
                                      ["--epochs=8", "--qat_epochs=3", "--patience=4",
                                       "--learning_rate=2e-3", "--warmup_steps=300",
                                       "--embedding=codes", "--num_codebooks=16", "--codebook_size=16",
                                       "--init_from={out}/mtop_bilstm_continued"], "mtop", "eval"),
    "mtop_bilstm_continued_codes8": (["configs/bilstm.flags", "configs/mtop.flags"],
                                     ["--epochs=8", "--qat_epochs=3", "--patience=4",
                                      "--learning_rate=2e-3", "--warmup_steps=300",
                                      "--embedding=codes", "--num_codebooks=8", "--codebook_size=16",
                                      "--init_from={out}/mtop_bilstm_continued"], "mtop", "eval"),
    # The same codes learned from random codes (no reference): the from-scratch variant.
    "mtop_bilstm_codes8_scratch": (["configs/bilstm.flags", "configs/mtop.flags"],
                                   ["--epochs=15", "--qat_epochs=3", "--patience=4",
                                    "--learning_rate=2e-3", "--warmup_steps=300", "--embedding=codes",
                                    "--num_codebooks=8", "--codebook_size=16"], "mtop", "eval"),
    "mtop_base_from_pqrnn": (["configs/pnlp_mixer_base.flags", "configs/mtop.flags"],
                             ["--epochs=20", "--qat_epochs=3", "--patience=4", "--learning_rate=2e-3",
                              "--warmup_steps=300", "--distill_alpha=0.5",
                              "--distill_temperature=2"], "mtop", "eval", "mtop_pqrnn"),
    "mtop_xsmall": (["configs/pnlp_mixer_xsmall.flags", "configs/mtop.flags"],
                    ["--epochs=12", "--qat_epochs=2", "--patience=4", "--learning_rate=2e-3", "--warmup_steps=300"], "mtop", "eval"),
    "multiatis_joint": (["configs/pnlp_mixer_base.flags", "configs/multiatis.flags"],
                        ["--epochs=15", "--qat_epochs=2", "--patience=4", "--learning_rate=2e-3",
                         "--warmup_steps=300"], "multiatis", "dev"),
    "multiatis_multi": (["configs/pnlp_mixer_base.flags", "configs/multiatis.flags"],
                        ["--epochs=15", "--qat_epochs=2", "--patience=4", "--learning_rate=2e-3",
                         "--warmup_steps=300", "--intent_mode=multi_label"],
                        "multiatis", "dev"),
    "atis": (["configs/pnlp_mixer_base.flags", "configs/atis.flags"],
             ["--epochs=30", "--qat_epochs=2", "--patience=5", "--learning_rate=1e-3"], "atis", "dev"),
    "snips": (["configs/pnlp_mixer_base.flags", "configs/snips.flags"],
              ["--epochs=30", "--qat_epochs=2", "--patience=5", "--learning_rate=1e-3"], "snips", "dev"),
    # Issue 7 on the English sets: the BiLSTM reference and its table as 8x16 codes.
    "atis_bilstm": (["configs/bilstm.flags", "configs/atis.flags"],
                    ["--epochs=30", "--qat_epochs=2", "--patience=5", "--learning_rate=2e-3"], "atis", "dev"),
    "atis_bilstm_codes8": (["configs/bilstm.flags", "configs/atis.flags"],
                           ["--epochs=12", "--qat_epochs=3", "--patience=5", "--learning_rate=2e-3",
                            "--embedding=codes", "--num_codebooks=8", "--codebook_size=16",
                            "--init_from={out}/atis_bilstm"], "atis", "dev"),
    "snips_bilstm": (["configs/bilstm.flags", "configs/snips.flags"],
                     ["--epochs=30", "--qat_epochs=2", "--patience=5", "--learning_rate=2e-3"], "snips", "dev"),
    "snips_bilstm_codes8": (["configs/bilstm.flags", "configs/snips.flags"],
                            ["--epochs=12", "--qat_epochs=3", "--patience=5", "--learning_rate=2e-3",
                             "--embedding=codes", "--num_codebooks=8", "--codebook_size=16",
                             "--init_from={out}/snips_bilstm"], "snips", "dev"),
}


def tool(name):
    """The console script next to this Python (a virtualenv's bin), else on PATH."""
    here = os.path.join(os.path.dirname(sys.executable), name)
    return here if os.path.exists(here) else name


def run(cmd, log):
    print("$ " + " ".join(cmd), flush=True)
    with open(log, "a", encoding="utf-8") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}); see {log}")


def one(name, out_dir, datasets):
    flagfiles, extra, dataset, split, *teacher = RUNS[name]
    model_dir = os.path.join(out_dir, name)
    data_dir = os.path.join(datasets, dataset)
    log = os.path.join(out_dir, name + ".log")
    os.makedirs(out_dir, exist_ok=True)
    if teacher:
        # The teacher's logits on the training split, once (its model folder: Keras logits).
        teacher_dir = os.path.join(out_dir, teacher[0])
        if not os.path.isdir(teacher_dir):
            raise SystemExit(f"{name} distils from {teacher[0]}: run that first ({teacher_dir})")
        teacher_file = os.path.join(out_dir, teacher[0] + ".teacher.jsonl")
        if not os.path.exists(teacher_file):
            run([tool("prado-eval"), f"--model={teacher_dir}", f"--dataset={dataset}",
                 f"--data_dir={data_dir}", "--split=train", f"--teacher_out={teacher_file}"], log)
        extra = extra + [f"--teacher={teacher_file}"]
    extra = [a.replace("{out}", out_dir) for a in extra]
    t0 = time.time()
    run([tool("prado-train")] + [f"--flagfile={f}" for f in flagfiles]
        + [f"--model_dir={model_dir}", f"--data_dir={data_dir}"] + extra + COMMON, log)
    t_train = time.time() - t0
    tfl = os.path.join(model_dir, "model.tflite")
    run([tool("prado-export"), f"--model_dir={model_dir}", f"--output={tfl}"], log)
    metrics = os.path.join(model_dir, f"metrics_{split}.json")
    run([tool("prado-eval"), f"--model={tfl}", f"--dataset={dataset}", f"--data_dir={data_dir}",
         f"--split={split}", f"--metrics_out={metrics}",
         f"--predictions_out={os.path.join(model_dir, f'predictions_{split}.jsonl')}"], log)
    with open(metrics, encoding="utf-8") as f:
        m = json.load(f)
    with open(tfl + ".json", encoding="utf-8") as f:
        export = json.load(f)
    with open(os.path.join(model_dir, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    rates = sorted(e["examples_per_second"] for e in history["epochs"] if e.get("examples_per_second"))
    return {"run": name, "dataset": dataset, "split": split, "bytes": export["bytes"],
            "parameters": export["parameters"], "parity": export.get("parity"),
            "languages": {k: v for k, v in m["result"]["languages"].items()},
            "average": m["result"]["average"], "epochs": len(history["epochs"]),
            "best_epoch": (history.get("best_epoch") or {}).get("epoch"),
            "train_examples_per_second_median": rates[len(rates) // 2] if rates else None,
            "wall_seconds_this_invocation": round(t_train, 1)}


def pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def table(results):
    lines = ["| run | int8 bytes | languages | intent acc | slot F1 | slot tag acc | exact match | TFLite - Keras EM |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        avg = r["average"]
        drop = r["parity"]["exact_match_drop"] if r.get("parity") else None
        lines.append(f"| {r['run']} | {r['bytes']:,} | {len(r['languages'])} | {pct(avg['intent_accuracy'])} | "
                     f"{pct(avg['slot_f1'])} | {pct(avg.get('slot_tag_accuracy'))} | "
                     f"{pct(avg['exact_match'])} | "
                     f"{'-' if drop is None else f'{-drop:+.2f}'} |")
    for r in results:
        langs = sorted(r["languages"])
        lines += ["", f"{r['run']} ({r['dataset']} {r['split']}), per language:", "",
                  "| | " + " | ".join(langs) + " | average |", "|---" * (len(langs) + 2) + "|"]
        for key, label in (("exact_match", "exact match"), ("intent_accuracy", "intent acc"),
                           ("slot_f1", "slot F1"), ("slot_tag_accuracy", "slot tag acc")):
            lines.append(f"| {label} | " + " | ".join(pct(r["languages"][k].get(key)) for k in langs)
                         + f" | {pct(r['average'].get(key))} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default=",".join(RUNS))
    ap.add_argument("--out_dir", default=os.path.join(REPO, "runs", "repro"))
    ap.add_argument("--datasets", default=os.path.join(os.path.dirname(REPO), "shared", "datasets"))
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out_dir)
    for name in args.runs.split(","):
        if name not in RUNS:
            raise SystemExit(f"unknown run {name!r}; known: {', '.join(RUNS)}")
    for name in args.runs.split(","):
        record(name, one(name, out_dir, os.path.abspath(args.datasets)), out_dir)


def record(name, result, out_dir):
    """Adds one run's result to OUT_DIR/results.json and results.md; prints its table."""
    from prado_tiny.bench.machine import describe_machine
    path = os.path.join(out_dir, "results.json")
    # Read again after the run: another invocation may have added its runs meanwhile.
    done = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            done = {r["run"]: r for r in json.load(f)["results"]}
    done[name] = result
    # Runs this script does not know (another version wrote them) are kept, not dropped.
    results = [done[k] for k in RUNS if k in done] + [r for k, r in done.items() if k not in RUNS]
    doc = {"machine": describe_machine(), "date": time.strftime("%Y-%m-%d"), "results": results}
    os.makedirs(out_dir, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(out_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(table(results))
    print(table([done[name]]), flush=True)

if __name__ == "__main__":
    main()
