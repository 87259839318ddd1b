"""prado_tiny/bench/runner.py, the self-contained runner (local and ssh targets run it)."""
import ast
import json
import os
import subprocess
import sys

import numpy as np

from prado_tiny.bench.local import RUNNER, encode_utterances


def run(*args):
    return subprocess.run([sys.executable, RUNNER, *args], capture_output=True, text=True, timeout=120)


def test_imports_nothing_of_prado_tiny():
    # It is copied alone to a board: only the standard library, numpy and a LiteRT interpreter.
    tree = ast.parse(open(RUNNER, encoding="utf-8").read())
    mods = {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    mods |= {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert mods <= {"argparse", "json", "os", "platform", "sys", "time", "numpy",
                    "ai_edge_litert", "tflite_runtime"}, mods


def test_outputs_equal_the_interpreter_on_the_same_inputs(tiny_export, tmp_path):
    from ai_edge_litert.interpreter import Interpreter
    path = tiny_export[1]
    x = encode_utterances(path, [["wake", "me", "at", "7"], ["play", "music"]])[:, None]
    np.savez(tmp_path / "in.npz", input_0=x)
    r = run("--model", path, "--inputs", str(tmp_path / "in.npz"), "--runs", "7", "--warmup", "2",
            "--cpus", "last", "--outputs_out", str(tmp_path / "out.npz"))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(res["samples_us"]) == 7 and res["input_rows"] == 2
    assert res["cpus"] == [sorted(os.sched_getaffinity(0))[-1]]
    assert res["peak_rss_bytes"] > res["peak_delta_bytes"] > 0
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    out = np.load(tmp_path / "out.npz")
    for row in range(2):
        it.set_tensor(it.get_input_details()[0]["index"], x[row])
        it.invoke()
        for j, d in enumerate(it.get_output_details()):
            np.testing.assert_array_equal(out[f"output_{j}"][row], it.get_tensor(d["index"]))


def test_random_inputs_without_an_inputs_file(tiny_export):
    r = run("--model", tiny_export[1], "--runs", "3", "--warmup", "0", "--cpus", "0")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["cpus"] == [0] and res["input_rows"] == 16 and res["first_us"] > 0


def test_min_seconds_keeps_timing_past_runs(tiny_export):
    r = run("--model", tiny_export[1], "--runs", "2", "--warmup", "0", "--min_seconds", "0.5")
    assert r.returncode == 0, r.stderr
    samples = json.loads(r.stdout.strip().splitlines()[-1])["samples_us"]
    # The clock covers only invokes, so their sum is a lower bound of the time spent timing.
    assert len(samples) > 2 and sum(samples) < 0.5e6 * 2


def test_wrong_input_shape_is_named(tiny_export, tmp_path):
    np.savez(tmp_path / "bad.npz", input_0=np.zeros((3, 5), np.int32))
    r = run("--model", tiny_export[1], "--inputs", str(tmp_path / "bad.npz"), "--runs", "1")
    assert r.returncode != 0
    assert "needs int32[1, 16, " in r.stderr and "got int32[5]" in r.stderr
