"""The benchmark record every target fills in, and its outputs: JSON, a Markdown table, a PNG plot.

One `BenchRecord` per model and target. The local and ssh targets time each invoke themselves
(`runner.py`) and fill the percentiles; Android's `benchmark_model` prints mean, deviation and,
in recent builds, p5/median/p95, so its p90/p99 stay None.

A seq2seq model (pQRNN-MAtt: an encoder .tflite and a one-step decoder .tflite beside it) is one
record for the pair: its size is both files', and the notes under the Markdown table say what
the invoke columns and the whole-parse figures (`parse_latency_us`) measured.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np


class BenchError(RuntimeError):
    """A benchmark could not run; the message says what is wrong and how to fix it."""


@dataclasses.dataclass
class BenchRecord:
    """One model on one target.

    Attributes:
      name: a short label (the model's folder name for `.../NAME/model.tflite`, else the file stem).
      model: the .tflite path on the host.
      target: `local`, `adb`, `ssh` or `qemu-arm64`.
      device: what ran it (`describe_machine()`, the phone's model, the board's uname).
      size_bytes, params, macs: from the flatbuffer (`model_stats`). For a seq2seq pair, size and
        parameters are both files' (what an app ships); MACs are the timed invoke's, the encoder's.
      num_threads, cpus: interpreter threads and the CPUs the process was pinned to.
      inputs: where the inputs came from (`demo dev: 100 utterances`, `random`).
      runs, warmup: timed and untimed invokes.
      init_us: interpreter construction and tensor allocation. first_us: the first invoke.
      mean_us, std_us, min_us, p50_us, p90_us, p99_us: of the timed invokes, microseconds.
      quiet_p50_us: the lowest median of `QUIET_BLOCKS` consecutive stretches of the timed invokes
        (at least `QUIET_MIN_RUNS` runs): the latency while nothing else held the core. On a
        shared VM or a phone that throttles, whole stretches of a run slow down together, so
        p50 moves between runs while this figure stays put. None for shorter runs.
      peak_memory_bytes: peak RSS growth from loading and running the model (process-wide
        peak on adb: benchmark_model's footprint delta).
      reference: this record is the mBERT-shaped reference.
      size_ratio, latency_ratio: the reference's size / this size, reference p50 (mean on adb) /
        this one: how many times smaller and faster than the reference.
      accuracy: metrics from a prado-eval `--metrics_out` file (`exact_match`, `intent_acc`, ...).
      extra: target-specific raw figures.
      seq2seq: the model is the encoder of a seq2seq pair; the latency columns time its invoke.
      files: seq2seq pairs: `{"encoder": {...}, "decoder": {...}}`, each file's `path`, `bytes`,
        `params` and `macs` (the decoder's per step).
      parse_latency_us: seq2seq pairs on the local target: a whole utterance on the host
        (`Predictor.predict`: the encoder once, then the search over the decoder), per beam width
        (`beam_1`, `beam_4`): `summarize_us` of the timed utterances.
      decoder_invoke_us: seq2seq pairs on a device: one decoder step timed there (`summarize_us`
        keys, plus `init`, `first` and `inputs`).
      note: what was and was not measured, in words (seq2seq pairs).
    """

    name: str
    model: str
    target: str
    device: str = ""
    size_bytes: int = 0
    params: Optional[int] = None
    macs: Optional[int] = None
    num_threads: int = 1
    cpus: Optional[List[int]] = None
    inputs: str = ""
    runs: int = 0
    warmup: int = 0
    init_us: Optional[float] = None
    first_us: Optional[float] = None
    mean_us: Optional[float] = None
    std_us: Optional[float] = None
    min_us: Optional[float] = None
    p50_us: Optional[float] = None
    quiet_p50_us: Optional[float] = None
    p90_us: Optional[float] = None
    p99_us: Optional[float] = None
    peak_memory_bytes: Optional[int] = None
    reference: bool = False
    size_ratio: Optional[float] = None
    latency_ratio: Optional[float] = None
    accuracy: Optional[Dict[str, Any]] = None
    extra: Dict[str, Any] = dataclasses.field(default_factory=dict)
    seq2seq: bool = False
    files: Optional[Dict[str, Dict[str, Any]]] = None
    parse_latency_us: Optional[Dict[str, Dict[str, Any]]] = None
    decoder_invoke_us: Optional[Dict[str, Any]] = None
    note: Optional[str] = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def latency_us(self) -> Optional[float]:
        """The figure latency ratios use: p50 where the target measured it, else the mean."""
        return self.p50_us if self.p50_us is not None else self.mean_us


def model_name(path: str) -> str:
    """`runs/mtop_base/model.tflite` -> `mtop_base`; `x/tiny.tflite` -> `tiny`."""
    stem = os.path.splitext(os.path.basename(path))[0]
    parent = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return parent if stem == "model" and parent else stem


QUIET_BLOCKS = 10
QUIET_MIN_RUNS = 50


def fill_timings(record: BenchRecord, samples_us: Sequence[float]) -> None:
    """Sets runs, mean, std, min, p50/p90/p99 and quiet_p50 from per-invoke times (microseconds).

    `samples_us` must be in the order the invokes ran: quiet_p50 reads consecutive stretches.

    Raises:
      BenchError: no samples (the benchmark ran no timed invoke: raise --runs).
    """
    us = np.asarray(samples_us, dtype=np.float64)
    if us.size == 0:
        raise BenchError(f"{record.model}: no timed runs on {record.target}: set --runs to 1 or more")
    s = summarize_us(us)
    record.runs, record.mean_us, record.min_us = s["runs"], s["mean"], s["min"]
    record.p50_us, record.p90_us, record.p99_us = s["p50"], s["p90"], s["p99"]
    record.std_us = float(us.std())
    record.quiet_p50_us = (float(min(np.median(b) for b in np.array_split(us, QUIET_BLOCKS)))
                           if us.size >= QUIET_MIN_RUNS else None)


def summarize_us(samples_us: Sequence[float]) -> Dict[str, Any]:
    """`{"runs", "mean", "min", "p50", "p90", "p99"}` of timings in microseconds: a record's own
    invoke (`fill_timings`) and the figures it holds besides it (whole parses, a decoder step).

    Raises:
      BenchError: no samples.
    """
    us = np.asarray(samples_us, dtype=np.float64)
    if us.size == 0:
        raise BenchError("no timed runs: set --runs to 1 or more")
    p50, p90, p99 = (float(v) for v in np.percentile(us, [50, 90, 99]))
    return {"runs": int(us.size), "mean": float(us.mean()), "min": float(us.min()), "p50": p50,
            "p90": p90, "p99": p99}


def apply_reference(records: List[BenchRecord]) -> None:
    """Sets size_ratio and latency_ratio of every record against the reference of its target."""
    refs = {r.target: r for r in records if r.reference}
    for r in records:
        ref = refs.get(r.target)
        if ref is None:
            continue
        if r.size_bytes:
            r.size_ratio = ref.size_bytes / r.size_bytes
        if r.latency_us and ref.latency_us:
            r.latency_ratio = ref.latency_us / r.latency_us


def read_metrics(path: str) -> Dict[str, Any]:
    """Headline accuracy from a `prado-eval --metrics_out` file.

    Returns `{"model": ..., "dataset": ..., "split": ..., "exact_match", "intent_acc", "slot_f1"}`
    (percent, averaged over languages; None where prado-eval had no figure).

    Raises:
      BenchError: the file is missing or not a prado-eval metrics file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise BenchError(f"{path}: cannot read the metrics file ({e.strerror}); pass files written "
                         f"by prado-eval --metrics_out") from None
    except json.JSONDecodeError as e:
        raise BenchError(f"{path}: not JSON ({e}); pass files written by prado-eval --metrics_out") from None
    avg = (doc.get("result") or {}).get("average") if isinstance(doc, dict) else None
    if not isinstance(avg, dict):
        raise BenchError(f"{path}: no result.average in it; pass files written by "
                         f"prado-eval --metrics_out")

    def pct(key):
        v = avg.get(key)
        return None if v is None else 100.0 * float(v)

    return {"model": doc.get("model"), "dataset": doc.get("dataset"), "split": doc.get("split"),
            "exact_match": pct("exact_match"), "intent_acc": pct("intent_accuracy"),
            "slot_f1": pct("slot_f1")}


def attach_metrics(records: List[BenchRecord], metrics: Dict[str, Dict[str, Any]]) -> None:
    """Gives each record the metrics whose `model` is its file (by real path), else by name."""
    by_path = {os.path.realpath(m["model"]): m for m in metrics.values() if m.get("model")}
    by_name = {model_name(m["model"]): m for m in metrics.values() if m.get("model")}
    for r in records:
        m = by_path.get(os.path.realpath(r.model)) or by_name.get(r.name)
        if m is not None:
            r.accuracy = m


def write_json(records: List[BenchRecord], path: str, meta: Optional[dict] = None) -> None:
    """`{"meta": {...}, "records": [...]}` with one record per model and target."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"meta": meta or {}, "records": [r.as_dict() for r in records]}, f, indent=1)


def _num(v, fmt="{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _beams(parse_latency_us: Dict[str, Dict[str, Any]]) -> List[tuple]:
    """`{"beam_4": {...}, "beam_1": {...}}` -> [(1, {...}), (4, {...})]."""
    return sorted((int(k.rsplit("_", 1)[-1]), v) for k, v in parse_latency_us.items())


def seq2seq_notes(records: List[BenchRecord]) -> List[str]:
    """Markdown lines under the table for seq2seq pairs: the two files' bytes, the whole-parse
    latency per beam width (local), the decoder step and what was not measured (devices)."""
    lines = []
    for r in records:
        if not r.seq2seq:
            continue
        who = f"**{r.name}** ({r.target})"
        enc, dec = (r.files or {}).get("encoder", {}), (r.files or {}).get("decoder", {})
        lines.append(f"- {who}: seq2seq pair {os.path.basename(enc.get('path', r.model))} + "
                     f"{os.path.basename(dec.get('path', '?'))}: {_num(enc.get('bytes'))} + "
                     f"{_num(dec.get('bytes'))} = {_num(r.size_bytes)} bytes (the bytes column); "
                     f"the invoke columns time the encoder alone.")
        if r.parse_latency_us:
            beams = "; ".join(f"beam {w} p50 {_num(v['p50'])} / p90 {_num(v['p90'])} / p99 "
                              f"{_num(v['p99'])} us ({v['runs']} parses)"
                              for w, v in _beams(r.parse_latency_us))
            lines.append(f"- {who}: whole parse on the host (encoder + search over the decoder, "
                         f"{r.num_threads} thread(s)): {beams}.")
        if r.decoder_invoke_us:
            d = r.decoder_invoke_us
            lines.append(f"- {who}: one decoder step on the device: p50 {_num(d.get('p50'))} us, "
                         f"mean {_num(d.get('mean'))} us ({d.get('runs')} runs).")
        if r.note and not r.parse_latency_us:
            lines.append(f"- {who}: {r.note}")
    return lines


def markdown_table(records: List[BenchRecord]) -> str:
    """One row per record: size, params, MACs, latency percentiles, memory, ratios, accuracy;
    then `seq2seq_notes` when a seq2seq pair is among the records."""
    head = ("| model | target | bytes | params | MACs | init us | first us | p50 us | quiet p50 us | "
            "p90 us | p99 us | mean us | peak mem KB | smaller than ref | faster than ref | exact match |")
    lines = [head, "|" + "---|" * 2 + "---:|" * 14]
    for r in records:
        em = (r.accuracy or {}).get("exact_match")
        lines.append("| " + " | ".join([
            r.name + (" (reference)" if r.reference else "") + (" (pair)" if r.seq2seq else ""),
            r.target, _num(r.size_bytes),
            _num(r.params), _num(r.macs), _num(r.init_us), _num(r.first_us), _num(r.p50_us),
            _num(r.quiet_p50_us), _num(r.p90_us), _num(r.p99_us), _num(r.mean_us),
            _num(None if r.peak_memory_bytes is None else r.peak_memory_bytes / 1024),
            _num(r.size_ratio, "{:,.1f}x"), _num(r.latency_ratio, "{:,.1f}x"),
            _num(em, "{:.1f}")]) + " |")
    notes = seq2seq_notes(records)
    return "\n".join(lines) + ("\n\n" + "\n".join(notes) if notes else "")


def plot(records: List[BenchRecord], path: str) -> bool:
    """Accuracy against size and against latency, one point per model (PNG).

    Models without accuracy (the reference: random weights) are drawn as a dashed vertical line
    at their size or latency. Returns False (and writes nothing) when matplotlib is not
    installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key, label in ((axes[0], "size_bytes", "model size (bytes)"),
                           (axes[1], "latency_us", "latency p50 (us)")):
        for r in records:
            x = getattr(r, key)
            if not x:
                continue
            y = (r.accuracy or {}).get("exact_match")
            if y is None:
                ax.axvline(x, linestyle="--", color="gray")
                ax.annotate(f"{r.name} ({r.target}, no accuracy)", (x, 0.5), rotation=90,
                            xycoords=("data", "axes fraction"), fontsize=7, ha="right", va="center")
                continue
            ax.scatter([x], [y])
            ax.annotate(f"{r.name} ({r.target})", (x, y), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("exact match (%)")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
