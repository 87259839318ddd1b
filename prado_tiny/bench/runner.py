"""Self-contained LiteRT latency runner: one .tflite, timed invokes, JSON on stdout.

This file imports nothing from prado_tiny on purpose: `prado-bench --target=ssh` copies it alone to
a board that has only numpy and a LiteRT interpreter (`ai_edge_litert`, or the older
`tflite_runtime`), and `--target=local` runs it in a fresh process so that the peak memory it
reports belongs to one model only.

    python runner.py --model M.tflite [--inputs X.npz] [--num_threads 1] [--cpus 1]
                     [--warmup 20] [--runs 200] [--min_seconds 0] [--seed 0]
                     [--outputs_out Y.npz]

--inputs: an .npz whose array `input_<i>` holds a stack of values for model input i (one row per
invoke, cycled); without it, random valid values (integers in [0, 256), the range of byte and
codepoint inputs and far below any vocabulary size; uniform floats) are drawn with --seed.
--cpus: pin this process to these CPUs (comma-separated), or `last` to the last --num_threads CPUs
it may use (CPU 0 takes most interrupts), before the interpreter exists, so its threads are
pinned too. --min_seconds: keep timing past --runs until this much time has passed (a shared
machine slows whole seconds at a time; a longer run holds quiet stretches). --outputs_out: every output of one invoke per input row (the arm64 check
compares them across machines).

Printed JSON (one line): `init_us` (interpreter construction and allocate_tensors), `first_us`
(the first invoke), `samples_us` (each timed invoke), `rss_before_bytes` (after imports and input
loading, before the model), `peak_rss_bytes` (VmHWM at the end, reset to the current RSS before
loading when the kernel allows it), `peak_delta_bytes` (their difference), `runtime`, `machine`.
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter, "ai_edge_litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter, "tflite_runtime"
    except ImportError:
        sys.exit("runner: no LiteRT interpreter: pip install ai-edge-litert (or tflite-runtime) "
                 "for this Python")


def _status_bytes(field):
    """A `VmRSS`/`VmHWM` line of /proc/self/status in bytes (None off Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_peak():
    """Resets VmHWM to the current RSS (Linux >= 4.0: writing 5 to clear_refs); False if not."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _describe():
    """`node arch CPU model; N cores` (the board's model on a Raspberry Pi)."""
    what = platform.processor() or "?"
    for path, key in (("/proc/device-tree/model", None), ("/proc/cpuinfo", "model name"),
                      ("/proc/cpuinfo", "Model")):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        if key is None:
            what = text.strip("\0\n ")
            break
        line = next((ln for ln in text.splitlines() if ln.startswith(key)), None)
        if line:
            what = line.split(":", 1)[1].strip()
            break
    return f"{platform.node()} {platform.machine()} {what}; {os.cpu_count()} cores"


def _random_inputs(details, rows, seed):
    rng = np.random.default_rng(seed)
    out = []
    for d in details:
        shape = [rows] + [max(int(s), 1) for s in d["shape"]]
        dtype = np.dtype(d["dtype"])
        if dtype.kind in "iu":
            out.append(rng.integers(0, 256, size=shape).astype(dtype))
        elif dtype.kind == "b":
            out.append(rng.integers(0, 2, size=shape).astype(dtype))
        else:
            out.append(rng.random(size=shape).astype(dtype))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--inputs")
    ap.add_argument("--num_threads", type=int, default=1)
    ap.add_argument("--cpus", default="")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--min_seconds", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--outputs_out")
    args = ap.parse_args(argv)

    if args.cpus == "last" and hasattr(os, "sched_getaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[-max(args.num_threads, 1):]
    else:
        cpus = sorted({int(c) for c in args.cpus.split(",") if c.strip() and c != "last"})
    if cpus:
        if not hasattr(os, "sched_setaffinity"):
            sys.exit("runner: --cpus needs os.sched_setaffinity (Linux); leave --cpus empty here")
        os.sched_setaffinity(0, cpus)
    Interpreter, runtime = _interpreter_class()
    given = None
    if args.inputs:
        with np.load(args.inputs) as z:
            given = [z[k] for k in sorted(z.files, key=lambda k: int(k.split("_")[-1]))]

    rss_before = _status_bytes("VmRSS")
    peak_reset = _reset_peak()
    t0 = time.perf_counter_ns()
    it = Interpreter(model_path=args.model, num_threads=args.num_threads)
    it.allocate_tensors()
    init_us = (time.perf_counter_ns() - t0) / 1e3
    details = it.get_input_details()
    inputs = given if given is not None else _random_inputs(details, 16, args.seed)
    if len(inputs) != len(details):
        sys.exit(f"runner: {args.inputs} holds {len(inputs)} input arrays, the model has "
                 f"{len(details)} inputs")
    for d, x in zip(details, inputs):
        if list(x.shape[1:]) != [int(s) for s in d["shape"]] or x.dtype != np.dtype(d["dtype"]):
            sys.exit(f"runner: input {d['name']!r} needs {np.dtype(d['dtype']).name}"
                     f"{[int(s) for s in d['shape']]} per row, got {x.dtype.name}{list(x.shape[1:])}")
    rows = min(len(x) for x in inputs)
    indices = [d["index"] for d in details]

    def feed(r):
        for i, x in zip(indices, inputs):
            it.set_tensor(i, x[r])

    feed(0)
    t0 = time.perf_counter_ns()
    it.invoke()
    first_us = (time.perf_counter_ns() - t0) / 1e3
    for k in range(args.warmup):
        feed(k % rows)
        it.invoke()
    samples = []
    start, k = time.perf_counter(), 0
    while k < args.runs or time.perf_counter() - start < args.min_seconds:
        feed(k % rows)  # outside the clock: only the model is timed
        t0 = time.perf_counter_ns()
        it.invoke()
        samples.append((time.perf_counter_ns() - t0) / 1e3)
        k += 1
    peak = _status_bytes("VmHWM")
    if args.outputs_out:
        outs = {}
        for r in range(rows):
            feed(r)
            it.invoke()
            for j, d in enumerate(it.get_output_details()):
                outs.setdefault(f"output_{j}", []).append(it.get_tensor(d["index"]).copy())
        np.savez(args.outputs_out, **{k: np.stack(v) for k, v in outs.items()})
    print(json.dumps({
        "init_us": init_us, "first_us": first_us, "samples_us": samples,
        "rss_before_bytes": rss_before, "peak_rss_bytes": peak,
        "peak_delta_bytes": (peak - rss_before) if peak and rss_before and peak_reset else None,
        "input_rows": rows, "num_threads": args.num_threads,
        "cpus": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "runtime": runtime, "python": platform.python_version(),
        "machine": _describe()}))


if __name__ == "__main__":
    main()
