"""prado-bench end to end: the tiny demo model against a tiny config of the reference builder,
with prado-eval-style metrics, JSON, Markdown and PNG outputs, repeats, and flag errors."""
import json
import os
import subprocess
import sys

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
# The tiny reference of test_bench_reference.py, in the same per-session cache: converted once.
TINY_REF = "num_layers=1,hidden=32,heads=4,intermediate=64,vocab_size=400,seq_len=16"


def bench(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "prado_tiny.bench_main", *args],
                          capture_output=True, text=True, env=ENV, timeout=timeout)


def test_local_run_against_the_reference(tiny_export, tmp_path, tmp_path_factory):
    model = tiny_export[1]
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps({
        "model": model, "dataset": "demo", "split": "dev", "languages": [], "examples": 50,
        "result": {"languages": {}, "overall": {},
                   "average": {"intent_accuracy": 0.5, "slot_f1": 0.4, "exact_match": 0.25}}}))
    out = {k: str(tmp_path / f"r.{k}") for k in ("json", "md", "png")}
    r = bench(f"--models={model}", "--reference=mbert", f"--reference_config={TINY_REF}",
              f"--reference_cache_dir={tmp_path_factory.getbasetemp() / 'prado_bench_reference_cache'}", "--runs=60", "--warmup=2", "--min_seconds=0",
              "--reference_runs=5", "--repeat=3", "--examples=20", f"--metrics={metrics}",
              f"--output_json={out['json']}", f"--output_md={out['md']}", f"--output_png={out['png']}")
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    doc = json.loads(open(out["json"]).read())
    assert doc["meta"]["target"] == "local" and doc["meta"]["repeat"] == 3
    mine, ref = doc["records"]
    assert ref["reference"] and ref["name"] == "mbert_shaped" and ref["inputs"] == "random"
    assert ref["runs"] == 5 and ref["model"].endswith(".tflite")
    assert mine["inputs"] == "demo dev: 20 utterances" and mine["runs"] == 60
    assert mine["size_ratio"] == ref["size_bytes"] / mine["size_bytes"]
    assert mine["latency_ratio"] == ref["p50_us"] / mine["p50_us"]
    assert mine["accuracy"]["exact_match"] == 25.0
    assert len(mine["extra"]["p50_repeats_us"]) == 3 and mine["extra"]["p50_spread_pct"] >= 0
    assert mine["p50_us"] in mine["extra"]["p50_repeats_us"]  # the median repeat is kept
    assert len(mine["extra"]["quiet_p50_repeats_us"]) == 3 and mine["quiet_p50_us"] <= mine["p50_us"]
    assert "quiet_p50_repeats_us" not in ref["extra"] and ref["quiet_p50_us"] is None  # 5 runs: too few
    table = open(out["md"]).read()
    assert table in r.stdout and "mbert_shaped (reference)" in table
    assert "spread" in r.stdout and "quiet p50" in r.stdout
    assert open(out["png"], "rb").read(4) == b"\x89PNG"


def test_flag_errors_say_what_to_fix(tmp_path, tiny_export):
    r = bench()
    assert r.returncode != 0 and "--models is required" in r.stderr
    r = bench(f"--models={tmp_path / 'missing.tflite'}")
    assert r.returncode != 0 and "--models: not found" in r.stderr
    r = bench(f"--models={tiny_export[1]}", "--reference=mbert", "--reference_config=layers=2")
    assert r.returncode != 0 and "'layers=2' is not key=integer" in r.stderr
    r = bench(f"--models={tiny_export[1]}", "--reference=mbert", "--reference_config=hidden=30")
    assert r.returncode != 0 and "hidden=30 is not divisible by heads=12" in r.stderr
    r = bench(f"--models={tiny_export[1]}", "--target=adb")
    assert r.returncode != 0 and "--target=adb needs --benchmark_binary" in r.stderr
    r = bench(f"--models={tiny_export[1]}", "--target=ssh")
    assert r.returncode != 0 and "--target=ssh needs --host" in r.stderr
