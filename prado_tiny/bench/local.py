"""The local target: each model timed by the LiteRT interpreter in a fresh, pinned process.

Inputs are real utterances encoded by the model's own text encoder (read from the prado_tiny
metadata in the .tflite, as `Predictor` does); a model without that metadata (the reference)
gets random valid inputs. `runner.py` runs in a subprocess so that the peak-memory figure is
that model's alone and the CPU pinning does not stick to the calling process.

A seq2seq encoder (pQRNN-MAtt; its one-step decoder `X.decoder.tflite` beside it) is timed twice:
its invoke as any model's, then whole utterances (`Predictor.predict`: the encoder once, then the
host search over the decoder), greedy and with the model's beam, in another fresh pinned process
(`python -m prado_tiny.bench.local --parse_model=...`). The record's size is the pair's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import List, NamedTuple, Optional, Sequence

import numpy as np

from prado_tiny.bench.model_stats import model_stats
from prado_tiny.bench.report import BenchError, BenchRecord, fill_timings, model_name, summarize_us

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


def dataset_examples(dataset: str, data_dir: Optional[str], split: str,
                     languages: Optional[Sequence[str]], examples: int) -> list:
    """Up to `examples` `Example`s of a dataset split, in file order.

    Raises:
      BenchError: the dataset cannot be read or the split is empty.
    """
    from prado_tiny.data.example import DataError
    from prado_tiny.data.registry import DatasetError, read_dataset

    try:
        out = []
        for ex in read_dataset(dataset, data_dir, split, list(languages) if languages else None):
            out.append(ex)
            if len(out) >= examples:
                break
    except (DataError, DatasetError) as e:
        raise BenchError(f"cannot read benchmark utterances: {e}") from None
    if not out:
        raise BenchError(f"no utterances in {dataset} split {split!r}: choose another --split or "
                         f"--languages")
    return out


def dataset_tokens(dataset: str, data_dir: Optional[str], split: str,
                   languages: Optional[Sequence[str]], examples: int) -> List[List[str]]:
    """Up to `examples` tokenized utterances of a dataset split, in file order.

    Raises:
      BenchError: the dataset cannot be read or the split is empty.
    """
    found = dataset_examples(dataset, data_dir, split, languages, examples)
    return [list(ex.tokens) for ex in found]


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


class Seq2seqPair(NamedTuple):
    """The second file and decoding defaults of a seq2seq encoder .tflite."""
    decoder: str
    beam_width: int


def seq2seq_pair(path: str) -> Optional[Seq2seqPair]:
    """The decoder of a seq2seq encoder .tflite (pQRNN-MAtt), None for a one-file model.

    The metadata's `model_type` says whether it is one, as it tells the Predictor; the Predictor
    itself then finds the decoder and checks that it belongs to this encoder (`pair_id`), so
    the pair benchmarked is the one an app would load.

    Args:
      path: a .tflite (with or without prado_tiny metadata).

    Raises:
      BenchError: a seq2seq file that is the decoder of its pair, or whose decoder is missing or
        belongs to another export.
    """
    from prado_tiny.export.metadata import MetadataError, read_metadata
    from prado_tiny.predictor import SEQ2SEQ_TYPES, Predictor

    try:
        doc = read_metadata(path)
    except MetadataError:
        return None
    if doc.get("model_type") not in SEQ2SEQ_TYPES:
        return None
    try:
        p = Predictor(path)
    except (OSError, MetadataError) as e:
        raise BenchError(f"{path}: this {doc.get('model_type')} pair cannot be loaded ({e}); pass "
                         f"the encoder .tflite to --models with its decoder beside it") from None
    # Beside the encoder (where the Predictor looks), named as the encoder's path is.
    return Seq2seqPair(os.path.join(os.path.dirname(path), os.path.basename(p.decoder_path)),
                       int(p.beam_width))


def pair_record(rec: BenchRecord, decoder: str) -> None:
    """Makes the encoder's record describe the deployable pair: bytes and parameters of both
    files, each file's own figures in `files` (MACs stay the encoder invoke's, as timed)."""
    dec = model_stats(decoder)
    rec.files = {"encoder": {"path": rec.model, "bytes": rec.size_bytes, "params": rec.params,
                             "macs": rec.macs},
                 "decoder": {"path": decoder, "bytes": dec.size_bytes, "params": dec.params,
                             "macs": dec.macs}}
    rec.size_bytes += dec.size_bytes
    rec.params = (rec.params or 0) + dec.params
    rec.seq2seq = True


def decoder_step_inputs(path: str, decoder: str,
                        token_lists: Optional[Sequence[Sequence[str]]]) -> List[tuple]:
    """The decoder's inputs at the first step of each utterance, for timing one decoder invoke.

    The encoder runs here on the host (`TFLiteStepper.start`, as the Predictor runs it) and the
    step starts from `<bos>` with the empty state. Random inputs would not do: token ids past the
    output vocabulary make the decoder's lookup fail. A step has fixed shapes, so the first one
    costs what any later one does.

    Args:
      path, decoder: the encoder and decoder .tflite.
      token_lists: tokenized utterances (None or empty: one placeholder word).

    Returns:
      `[(input detail, values [n, 1, ...])]` in the decoder's input order (the runner's
      `input_<i>`).

    Raises:
      BenchError: the decoder takes an input the encoder and state do not provide.
    """
    from ai_edge_litert.interpreter import Interpreter

    from prado_tiny.seq2seq_decoding import BOS_ID, TFLiteStepper

    x = encode_utterances(path, token_lists or [["hello"]])
    cache, state, _ = TFLiteStepper(path, decoder).start(x)
    feed = {**cache, **state, "token": np.full([len(x), 1], BOS_ID, np.int32)}
    it = Interpreter(model_path=decoder)
    names = {d["index"]: n for n, d in it.get_signature_runner().get_input_details().items()}
    out = []
    for d in it.get_input_details():
        name = names.get(d["index"])
        if name not in feed:
            raise BenchError(f"{decoder}: decoder input {d['name']!r} is not an encoder output or "
                             f"the decoding state; re-export the pair with this prado_tiny")
        out.append((d, feed[name].astype(d["dtype"])[:, np.newaxis]))  # one row per invoke
    return out


def prepare_decoder_inputs(path: str, decoder: str,
                           token_lists: Optional[Sequence[Sequence[str]]], workdir: str,
                           source: str) -> tuple:
    """Writes the decoder's first-step inputs as `input_<i>` of an .npz -> (npz path,
    description)."""
    rows = decoder_step_inputs(path, decoder, token_lists)
    npz = os.path.join(workdir, model_name(decoder) + ".inputs.npz")
    np.savez(npz, **{f"input_{i}": x for i, (_, x) in enumerate(rows)})
    what = f"{source}: {len(rows[0][1])} utterances" if token_lists else "a placeholder word"
    return npz, f"first decoder step of {what}"


def device_pair(rec: BenchRecord, decoder: str, dec: BenchRecord, tool: str) -> None:
    """Fills a device record of a seq2seq encoder: the pair's size, the decoder step timed on
    the device (`dec`, its own record) and a note saying that no whole parse ran there.

    Args:
      rec: the encoder's record (its invoke columns stay the encoder's).
      decoder: the decoder .tflite.
      dec: the decoder's record from the same target.
      tool: what ran on the device (`benchmark_model`, `runner.py`), for the note.
    """
    pair_record(rec, decoder)
    rec.decoder_invoke_us = {"runs": dec.runs, "mean": dec.mean_us, "min": dec.min_us,
                             "p50": dec.p50_us, "p90": dec.p90_us, "p99": dec.p99_us,
                             "init": dec.init_us, "first": dec.first_us, "inputs": dec.inputs}
    rec.note = (f"only single invokes were timed on the device, the encoder (the invoke "
                f"columns) and one decoder step (decoder_invoke_us); a whole parse runs one "
                f"decoder step per output token and beam in prado_tiny's search, which {tool} "
                f"cannot run there: time it with --target=local (parse_latency_us)")


def time_parses(path: str, texts: Sequence[str], beams: Sequence[int], *, num_threads: int = 1,
                cpus: Sequence[int] = (), warmup: int = 20, runs: int = 200,
                min_seconds: float = 0.0, timeout: float = 600.0,
                python: str = sys.executable) -> dict:
    """Times `Predictor.predict` on whole utterances of a seq2seq pair, in a fresh pinned process.

    Args:
      path: the encoder .tflite (its decoder beside it).
      texts: raw utterances, cycled.
      beams: beam widths to time (1: greedy).
      num_threads: interpreter threads of both files.
      cpus: CPUs to pin to (empty: no pinning).
      warmup, runs: untimed and timed utterances per beam width.
      min_seconds: keep timing each width past `runs` until this much time has passed.
      timeout: seconds before the process is abandoned.
      python: the interpreter that runs it.

    Returns:
      `{"beam_<w>": summarize_us(...) + {"utterances": distinct texts}}`.

    Raises:
      BenchError: the process failed.
    """
    with tempfile.TemporaryDirectory(prefix="prado_bench_parse_") as tmp:
        texts_file = os.path.join(tmp, "texts.json")
        with open(texts_file, "w", encoding="utf-8") as f:
            json.dump(list(texts), f)
        cmd = [python, "-m", "prado_tiny.bench.local", "--parse_model", path, "--texts", texts_file,
               "--beams", ",".join(map(str, beams)), "--num_threads", str(num_threads),
               "--cpus", ",".join(map(str, cpus)), "--warmup", str(warmup), "--runs", str(runs),
               "--min_seconds", str(min_seconds)]
        result = run_runner(cmd, f"{path}: whole parses on the host", timeout)
    return {k: {**summarize_us(v), "utterances": len(texts)}
            for k, v in result["samples_us"].items()}


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
                python: str = sys.executable, texts: Optional[Sequence[str]] = None) -> BenchRecord:
    """Benchmarks one .tflite on this machine; a seq2seq encoder also on whole parses.

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
      texts: seq2seq pairs: the raw utterances that `Predictor.predict` parses (None: the token
        lists joined by spaces); the same warmup, runs and min_seconds per beam width.

    Raises:
      BenchError: the model is missing, the runner failed, or a seq2seq pair is incomplete.
    """
    from prado_tiny.bench.machine import describe_machine

    if not os.path.isfile(path):
        raise BenchError(f"{path}: model file not found; pass existing .tflite files to --models")
    pair = seq2seq_pair(path)  # first: a lone decoder or encoder fails here, with the fix
    cpus = default_cpus(num_threads) if cpus is None else list(cpus)
    with tempfile.TemporaryDirectory(prefix="prado_bench_") as tmp:
        npz, inputs = prepare_inputs(path, token_lists, tmp, source)
        cmd = [python, RUNNER, "--model", path, "--num_threads", str(num_threads),
               "--cpus", ",".join(map(str, cpus)), "--warmup", str(warmup), "--runs", str(runs),
               "--min_seconds", str(min_seconds)]
        if npz:
            cmd += ["--inputs", npz]
        result = run_runner(cmd, f"{path} on the local LiteRT interpreter", timeout)
    rec = record_from_runner(path, "local", describe_machine(), result, inputs, warmup)
    if pair is not None:
        pair_record(rec, pair.decoder)
        texts = list(texts or [" ".join(t) for t in token_lists or []] or ["hello"])
        rec.parse_latency_us = time_parses(
            path, texts, sorted({1, pair.beam_width}), num_threads=num_threads, cpus=cpus,
            warmup=warmup, runs=runs, min_seconds=min_seconds, timeout=timeout, python=python)
        rec.note = (f"seq2seq pair: bytes and params are the encoder's and the decoder's; the "
                    f"invoke columns time the encoder alone; parse_latency_us times whole "
                    f"utterances (Predictor.predict) greedy and with the model's beam "
                    f"{pair.beam_width}")
    return rec


def _parse_main(argv=None) -> None:
    """`time_parses`' process: pins itself, loads the Predictor, prints `{"samples_us": ...}`."""
    ap = argparse.ArgumentParser(description="prado-bench: whole parses of a seq2seq pair")
    ap.add_argument("--parse_model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--beams", default="1")
    ap.add_argument("--num_threads", type=int, default=1)
    ap.add_argument("--cpus", default="")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--min_seconds", type=float, default=0.0)
    args = ap.parse_args(argv)
    cpus = sorted({int(c) for c in args.cpus.split(",") if c.strip()})
    if cpus:
        os.sched_setaffinity(0, cpus)  # before the interpreters exist, so their threads follow
    from prado_tiny.predictor import Predictor

    with open(args.texts, encoding="utf-8") as f:
        texts = json.load(f)
    p = Predictor(args.parse_model, num_threads=args.num_threads)
    samples = {}
    for width in (int(w) for w in args.beams.split(",")):
        p.beam_width = width
        for k in range(args.warmup):
            p.predict(texts[k % len(texts)])
        us, start, k = [], time.perf_counter(), 0
        while k < args.runs or time.perf_counter() - start < args.min_seconds:
            text = texts[k % len(texts)]
            t0 = time.perf_counter_ns()
            p.predict(text)
            us.append((time.perf_counter_ns() - t0) / 1e3)
            k += 1
        samples[f"beam_{width}"] = us
    print(json.dumps({"samples_us": samples}))


if __name__ == "__main__":
    _parse_main()
