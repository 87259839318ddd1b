"""Reproduces the pQRNN-MAtt figures of the README: MTOP parses by pQRNN-MAtt and its LSTM seq2seq
baseline, trained, exported and evaluated by the user commands.

Per run: `prado-train` with the shipped flagfiles (resumes an interrupted run; a finished one is
not trained again); for pQRNN-MAtt `prado-export` (int8 encoder + one-step decoder); then
`prado-eval` on MTOP's eval split with the model's beam (4) and with greedy decoding: the .tflite
pair and the Keras folder for pQRNN-MAtt (their gap is the parity figure), the folder for the float
baseline. Results go to OUT_DIR/parser_results.json and a Markdown table OUT_DIR/parser_results.md.

Usage (from the repository root):
  python benchmarks/reproduce_parser.py [--runs mtop_matt,mtop_lstm_seq2seq] [--out_dir runs/repro]
      [--datasets ../shared/datasets]

Runs:
  mtop_matt            pQRNN-MAtt, one model for MTOP's six languages (configs/pqrnn_matt.flags:
                       1024 projection features, decoder width 256), 18 epochs, QAT in the last 2
  mtop_matt_large_18   the name the README's 2026-12-06 run had: the same flags as mtop_matt
  mtop_matt_small_12   the earlier default: 512 features, decoder width 192 (feed-forward 768),
                       12 epochs, QAT in the last 2
  mtop_matt_small_18   mtop_matt_small_12 over 18 epochs (the schedule without the capacity)
  mtop_matt_en         mtop_matt_noint8 on English only (README, 2026-12-02)
  mtop_matt_noint8     mtop_matt_small_12 with --noint8_internals (QAT leaves the LayerNorm
                       internals and raw attention scores unrounded: the layout before 2026-12-06;
                       BUILD.md "pQRNN-MAtt: decisions")
  mtop_lstm_seq2seq    the LSTM seq2seq baseline, six languages (configs/lstm_seq2seq.flags),
                       12 epochs
  mtop_lstm_seq2seq_18 the baseline over 18 epochs, as mtop_matt
"""
import argparse
import json
import os
import time

import reproduce_mixer as rm  # tool(), run(): the same command runner; puts REPO on sys.path

REPO = rm.REPO
COMMON = ["--progress=false"]
MTOP = ["configs/mtop.flags"]
# The pQRNN-MAtt layout before 2026-12-06 (configs/pqrnn_matt.flags now sets the larger one).
SMALL = ["--num_features=512", "--decoder_dim=192", "--ff_dim=768"]
MATT = ["configs/pqrnn_matt.flags"] + MTOP
LSTM = ["configs/lstm_seq2seq.flags"] + MTOP
# mtop.flags' learning rate (2e-3, for the projection models) overridden: the LSTMs take 1e-3.
LSTM_LR = ["--learning_rate=1e-3", "--warmup_steps=500"]
RUNS = {
    "mtop_matt": (MATT, ["--epochs=18", "--qat_epochs=2"]),
    "mtop_matt_large_18": (MATT, ["--epochs=18", "--qat_epochs=2"]),
    "mtop_matt_small_12": (MATT, SMALL + ["--epochs=12", "--qat_epochs=2"]),
    "mtop_matt_small_18": (MATT, SMALL + ["--epochs=18", "--qat_epochs=2"]),
    "mtop_matt_noint8": (MATT, SMALL + ["--epochs=12", "--qat_epochs=2", "--noint8_internals"]),
    "mtop_matt_en": (MATT, SMALL + ["--epochs=12", "--qat_epochs=2", "--noint8_internals",
                                    "--languages=en"]),
    "mtop_lstm_seq2seq": (LSTM, ["--epochs=12"] + LSTM_LR),
    "mtop_lstm_seq2seq_18": (LSTM, ["--epochs=18"] + LSTM_LR),
}
SPLIT = "eval"


def evaluate(model, data_dir, out_prefix, log, beam_width=0):
    """prado-eval of `model` (a folder or the encoder .tflite) -> its metrics JSON."""
    metrics = out_prefix + ".json"
    if not os.path.exists(metrics):  # an evaluation is minutes: kept across invocations
        rm.run([rm.tool("prado-eval"), f"--model={model}", "--dataset=mtop",
                f"--data_dir={data_dir}", f"--split={SPLIT}", f"--beam_width={beam_width}",
                f"--metrics_out={metrics}.tmp", f"--predictions_out={out_prefix}.jsonl"], log)
        os.replace(metrics + ".tmp", metrics)
    with open(metrics, encoding="utf-8") as f:
        return json.load(f)


def one(name, out_dir, datasets):
    flagfiles, extra = RUNS[name]
    model_dir = os.path.join(out_dir, name)
    data_dir = os.path.join(datasets, "mtop")
    log = os.path.join(out_dir, name + ".log")
    os.makedirs(out_dir, exist_ok=True)
    rm.run([rm.tool("prado-train")] + [f"--flagfile={f}" for f in flagfiles]
           + [f"--model_dir={model_dir}", f"--data_dir={data_dir}"] + extra + COMMON, log)
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        spec = json.load(f)
    with open(os.path.join(model_dir, "history.json"), encoding="utf-8") as f:
        history = json.load(f)
    rates = sorted(e["examples_per_second"] for e in history["epochs"] if e.get("examples_per_second"))
    result = {"run": name, "model_type": spec["model_type"], "split": SPLIT,
              "epochs": len(history["epochs"]),
              "best_epoch": (history.get("best_epoch") or {}).get("epoch"),
              "train_examples_per_second_median": rates[len(rates) // 2] if rates else None}
    evals = {}
    if spec["model_type"] == "pqrnn_matt":
        tfl = os.path.join(model_dir, "parser.tflite")
        if not os.path.exists(tfl + ".json"):
            # Parity is measured below on the whole eval split (Keras and .tflite, same beam).
            rm.run([rm.tool("prado-export"), f"--model_dir={model_dir}", f"--output={tfl}",
                    "--parity_examples=-1"], log)
        with open(tfl + ".json", encoding="utf-8") as f:
            export = json.load(f)
        result.update(bytes=export["bytes"], parameters=export["parameters"], precision="int8",
                      files={"encoder": export["encoder_bytes"], "decoder": export["decoder_bytes"]})
        evals["tflite_beam"] = evaluate(tfl, data_dir, os.path.join(model_dir, "eval_tflite_beam"), log)
        evals["tflite_greedy"] = evaluate(tfl, data_dir, os.path.join(model_dir, "eval_tflite_greedy"),
                                          log, beam_width=1)
    else:
        # The float baseline ships as float32 weights: 4 bytes a parameter.
        from prado_tiny.models import model_dir as md
        model = md.build_model(spec)
        md.dummy_input(model, spec)
        result.update(parameters=int(model.count_params()), precision="float32")
        result["bytes"] = 4 * result["parameters"]
    evals["keras_beam"] = evaluate(model_dir, data_dir, os.path.join(model_dir, "eval_keras_beam"), log)
    if spec["model_type"] != "pqrnn_matt":
        evals["keras_greedy"] = evaluate(model_dir, data_dir,
                                         os.path.join(model_dir, "eval_keras_greedy"), log, beam_width=1)
    result["evaluations"] = {k: {"decoding": v.get("decoding"), "result": v["result"]}
                             for k, v in evals.items()}
    head = evals.get("tflite_beam", evals["keras_beam"])
    result["headline"] = "tflite_beam" if "tflite_beam" in evals else "keras_beam"
    result["languages"] = {k: v["tree_exact_match"] for k, v in head["result"]["languages"].items()}
    result["average"] = head["result"]["average"]
    if "tflite_beam" in evals:
        result["tflite_minus_keras"] = (evals["tflite_beam"]["result"]["average"]["tree_exact_match"]
                                        - evals["keras_beam"]["result"]["average"]["tree_exact_match"])
    return result


def pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def table(results):
    langs = sorted({k for r in results for k in r["languages"]})
    lines = ["| run | weights | bytes | parameters | " + " | ".join(langs)
             + " | average tree EM | flat EM | greedy tree EM | .tflite - Keras |",
             "|---|---|---:|---:|" + "---:|" * (len(langs) + 4)]
    for r in results:
        greedy = r["evaluations"].get("tflite_greedy") or r["evaluations"].get("keras_greedy")
        gap = r.get("tflite_minus_keras")
        lines.append(f"| {r['run']} | {r['precision']} | {r['bytes']:,} | {r['parameters']:,} | "
                     + " | ".join(pct(r["languages"].get(k)) for k in langs)
                     + f" | {pct(r['average']['tree_exact_match'])} | {pct(r['average']['exact_match'])}"
                     f" | {pct(greedy['result']['average']['tree_exact_match']) if greedy else '-'}"
                     f" | {'-' if gap is None else f'{100 * gap:+.2f}'} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="mtop_matt,mtop_lstm_seq2seq")
    ap.add_argument("--out_dir", default=os.path.join(REPO, "runs", "repro"))
    ap.add_argument("--datasets", default=os.path.join(os.path.dirname(REPO), "shared", "datasets"))
    args = ap.parse_args()
    out_dir = os.path.abspath(args.out_dir)
    names = args.runs.split(",")
    for name in names:
        if name not in RUNS:
            raise SystemExit(f"unknown run {name!r}; known: {', '.join(RUNS)}")
    for name in names:
        record(one(name, out_dir, os.path.abspath(args.datasets)), out_dir)


def record(result, out_dir):
    """Adds one run's result to OUT_DIR/parser_results.json and .md; prints the table."""
    from prado_tiny.bench.machine import describe_machine
    path = os.path.join(out_dir, "parser_results.json")
    done = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            done = {r["run"]: r for r in json.load(f)["results"]}
    done[result["run"]] = result
    results = [done[k] for k in RUNS if k in done] + [r for k, r in done.items() if k not in RUNS]
    doc = {"machine": describe_machine(), "date": time.strftime("%Y-%m-%d"), "results": results}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(out_dir, "parser_results.md"), "w", encoding="utf-8") as f:
        f.write(table(results))
    print(table(results), flush=True)


if __name__ == "__main__":
    main()
