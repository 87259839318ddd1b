"""The local target: each model timed by the LiteRT interpreter in a fresh, pinned process.

Inputs are real utterances encoded by the model's own text encoder (read from the prado_tiny
metadata in the .tflite, as `Predictor` does); a model without that metadata (the reference)
gets random valid inputs. `runner.py` runs in a subprocess so that the peak-memory figure is
that model's alone and the CPU pinning does not stick to the calling process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import List, Optional, Sequence

import numpy as np

from prado_tiny.bench.model_stats import model_stats
from prado_tiny.bench.report import BenchError, BenchRecord, fill_timings, model_name

RUNNER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "runner.py")


def default_cpus(num_threads: int) -> List[int]:
    """The last `num_threads` CPUs this process may use (CPU 0 takes most interrupts)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return allowed[-max(num_threads, 1):]


def encode_utterances(path: str, token_lists: Sequence[Sequence[str]]) -> Optional[np.ndarray]:
    """The model's input 0 for each token list, stacked: `[n, T, P, C]` or `[n, T, C]` int32.

    Args:
      path: a .tflite written by prado-export.
      token_lists: tokenized utterances.

    Returns:
      The stacked inputs, or None when the file has no prado_tiny metadata (use random inputs).
    """
    from prado_tiny.data.text_encoder import TextEncoder
    from prado_tiny.export.metadata import MetadataError, read_metadata

    try:
        doc = read_metadata(path)
    except MetadataError:
        return None
    if doc.get("format") != "prado-tiny-model" or "text_encoder" not in doc:
        return None
    enc = TextEncoder.from_config(doc["text_encoder"])
    form = doc.get("input", "codepoints")
    return np.stack([enc.encode_form(form, t) for t in token_lists]).astype(np.int32)


def dataset_tokens(dataset: str, data_dir: Optional[str], split: str,
                   languages: Optional[Sequence[str]], examples: int) -> List[List[str]]:
    """Up to `examples` tokenized utterances of a dataset split, in file order.

    Raises:
      BenchError: the dataset cannot be read or the split is empty.
    """
    from prado_tiny.data.example import DataError
    from prado_tiny.data.registry import DatasetError, read_dataset

    try:
        out = []
        for ex in read_dataset(dataset, data_dir, split, list(languages) if languages else None):
            out.append(list(ex.tokens))
            if len(out) >= examples:
                break
    except (DataError, DatasetError) as e:
        raise BenchError(f"cannot read benchmark utterances: {e}") from None
    if not out:
        raise BenchError(f"no utterances in {dataset} split {split!r}: choose another --split or "
                         f"--languages")
    return out


def run_runner(command: List[str], what: str, timeout: float) -> dict:
    """Runs a runner command line and returns its JSON (the last stdout line).

    Raises:
      BenchError: it failed, timed out or printed no JSON (its stderr is in the message).
    """
    try:
        r = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{what}: no result after {timeout:.0f} s; lower --runs or raise "
                         f"--timeout") from None
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        tail = (r.stderr or r.stdout).strip()[-2000:]
        raise BenchError(f"{what}: the runner failed (exit {r.returncode}): {tail}")
    return json.loads(lines[-1])


def record_from_runner(path: str, target: str, device: str, result: dict, inputs: str,
                       warmup: int) -> BenchRecord:
    """A `BenchRecord` from the runner's JSON and the flatbuffer's stats."""
    stats = model_stats(path)
    rec = BenchRecord(name=model_name(path), model=path, target=target, device=device,
                      size_bytes=stats.size_bytes, params=stats.params, macs=stats.macs,
                      num_threads=int(result.get("num_threads", 1)), cpus=result.get("cpus"),
                      inputs=inputs, warmup=warmup, init_us=result.get("init_us"),
                      first_us=result.get("first_us"),
                      peak_memory_bytes=result.get("peak_delta_bytes"))
    fill_timings(rec, result["samples_us"])
    rec.extra = {"peak_rss_bytes": result.get("peak_rss_bytes"), "runtime": result.get("runtime"),
                 "runner_machine": result.get("machine"), "macs_by_op": stats.macs_by_op}
    return rec


def prepare_inputs(path: str, token_lists: Optional[Sequence[Sequence[str]]], workdir: str,
                   source: str) -> tuple:
    """Writes the model's inputs as `input_0` of an .npz -> (npz path or None, description)."""
    if token_lists:
        x = encode_utterances(path, token_lists)
        if x is not None:
            npz = os.path.join(workdir, model_name(path) + ".inputs.npz")
            np.savez(npz, input_0=x[:, np.newaxis])  # one row per invoke, each of batch 1
            return npz, f"{source}: {len(x)} utterances"
    return None, "random"


def bench_local(path: str, token_lists: Optional[Sequence[Sequence[str]]] = None, *,
                source: str = "", num_threads: int = 1, cpus: Optional[Sequence[int]] = None,
                warmup: int = 20, runs: int = 200, min_seconds: float = 0.0, timeout: float = 600.0,
                python: str = sys.executable) -> BenchRecord:
    """Benchmarks one .tflite on this machine.

    Args:
      path: the model.
      token_lists: utterances to encode with the model's metadata (None: random inputs).
      source: what the utterances are, for the record (`demo dev`).
      num_threads: interpreter threads.
      cpus: CPUs to pin to (None: `default_cpus(num_threads)`; empty list: no pinning).
      warmup, runs: untimed and timed invokes.
      min_seconds: keep timing past `runs` until this much time has passed.
      timeout: seconds before the runner is abandoned.
      python: the interpreter that runs `runner.py`.

    Raises:
      BenchError: the model is missing or the runner failed.
    """
    from prado_tiny.bench.machine import describe_machine

    if not os.path.isfile(path):
        raise BenchError(f"{path}: model file not found; pass existing .tflite files to --models")
    cpus = default_cpus(num_threads) if cpus is None else list(cpus)
    with tempfile.TemporaryDirectory(prefix="prado_bench_") as tmp:
        npz, inputs = prepare_inputs(path, token_lists, tmp, source)
        cmd = [python, RUNNER, "--model", path, "--num_threads", str(num_threads),
               "--cpus", ",".join(map(str, cpus)), "--warmup", str(warmup), "--runs", str(runs),
               "--min_seconds", str(min_seconds)]
        if npz:
            cmd += ["--inputs", npz]
        result = run_runner(cmd, f"{path} on the local LiteRT interpreter", timeout)
    return record_from_runner(path, "local", describe_machine(), result, inputs, warmup)
