"""Compression rate against degradation: the offline baselines on a trained reference model, the
task-aware compressed models, and any other toolkit model on the same size axis.

Every row is measured the same way: the Keras model (with its QAT fake quantization) on the
same examples, scored by the toolkit's metrics. Offline rows are the reference model with its
table replaced by the reconstruction (`offline.py`); nothing is retrained.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Sequence


from prado_tiny.compress import offline

METRICS = ("exact_match", "intent_accuracy", "slot_f1")
# "At equal size": an offline setting may use up to this many times the codes' bytes.
SIZE_SLACK = 1.25


@dataclasses.dataclass
class Row:
    """One point of the report. `table_bytes` is None for a model without an embedding table
    (the projection models); `model_bytes` is its int8 .tflite size when one was exported."""

    kind: str  # reference, offline, task_aware, other
    method: str
    setting: str
    table_bytes: Optional[int]
    rate: Optional[float]
    metrics: Dict[str, Optional[float]]
    model_dir: str = ""
    model_bytes: Optional[int] = None

    def degradation(self, reference: "Row", metric: str) -> Optional[float]:
        """Relative degradation against the reference: (ref - x) / ref."""
        ref, x = reference.metrics.get(metric), self.metrics.get(metric)
        if ref is None or x is None or ref == 0:
            return None
        return (ref - x) / ref

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _evaluate(model, feature_set, vocab, intent_mode) -> Dict[str, Optional[float]]:
    from prado_tiny.evaluation import dev_evaluator
    h = dev_evaluator(vocab, intent_mode)(model, feature_set)
    return {k: h[k] for k in METRICS}


def _tflite_bytes(model_dir: str) -> Optional[int]:
    """Size of the folder's exported .tflite (`model.tflite`, as the reproduction scripts name it)."""
    path = os.path.join(model_dir, "model.tflite")
    return os.path.getsize(path) if os.path.exists(path) else None


def embedding_layer(model):
    """The model's embedding layer (a `PieceEmbedding` or `CodeEmbedding`), or None."""
    return getattr(model, "embedding", None)


def measure(reference_dir: str, examples: Sequence, compressed_dirs: Sequence[str] = (),
            other_dirs: Sequence[str] = (), sweep=offline.DEFAULT_SWEEP, log=print) -> List[Row]:
    """The rows of the report on `examples` (a development split)."""
    from prado_tiny.layers.piece_embedding import PieceEmbedding
    from prado_tiny.models import model_dir as md

    # Every compressed folder is checked before the reference's sweep, not after it.
    for path in compressed_dirs:
        if md.embedding_kind(md.read_spec(path) or {}) != "codes":
            raise ValueError(f"{path}: not a compressed-embedding model "
                             f"(prado-train --model=bilstm --embedding=codes)")
    model, spec, vocab, encoder = md.load(reference_dir)
    emb = embedding_layer(model)
    if not isinstance(emb, PieceEmbedding):
        raise ValueError(f"{reference_dir}: the reference must be an embedding-table model "
                         f"(prado-train --model=bilstm), not {spec['model_type']} "
                         f"{type(emb).__name__ if emb is not None else 'without an embedding'}")
    features = md.featurize(examples, spec, encoder, vocab)
    table = emb.embeddings.numpy()
    v, d = table.shape
    rows = [Row("reference", "uncompressed", f"{v}x{d} float32", 4 * v * d, 0.0,
                _evaluate(model, features, vocab, spec["intent_mode"]), reference_dir,
                _tflite_bytes(reference_dir))]
    log(f"reference: {rows[0].metrics}")
    for method, kwargs in sweep:
        c = offline.compress(table, method, **kwargs)
        emb.embeddings.assign(c.table)
        metrics = _evaluate(model, features, vocab, spec["intent_mode"])
        rows.append(Row("offline", method, c.setting, c.bytes, c.rate(v, d), metrics, reference_dir))
        log(f"{method} {c.setting}: {c.bytes:,} B ({100 * c.rate(v, d):.2f}%) {metrics}")
    emb.embeddings.assign(table)
    for path in compressed_dirs:
        m, s, voc, enc = md.load(path)
        layer = embedding_layer(m)
        if (layer.vocab_size, layer.dim) != (v, d):
            log(f"note: {path} has a {layer.vocab_size}x{layer.dim} table, the reference {v}x{d}")
        b = layer.table_bytes()
        metrics = _evaluate(m, md.featurize(examples, s, enc, voc), voc, s["intent_mode"])
        rows.append(Row("task_aware", "task_aware_codes",
                        f"M={layer.num_codebooks} K={layer.codebook_size} "
                        f"({os.path.basename(os.path.normpath(path))})", b["total"],
                        1.0 - b["total"] / b["float32_table"], metrics, path, _tflite_bytes(path)))
        log(f"task-aware {rows[-1].setting}: {b['total']:,} B {metrics}")
    for path in other_dirs:
        m, s, voc, enc = md.load(path)
        metrics = _evaluate(m, md.featurize(examples, s, enc, voc), voc, s["intent_mode"])
        rows.append(Row("other", s["model_type"], os.path.basename(os.path.normpath(path)), None,
                        None, metrics, path, _tflite_bytes(path)))
        log(f"{s['model_type']} {path}: {metrics}")
    return rows


def _pct(x):
    return "-" if x is None else f"{100 * x:.2f}"


def table(rows: Sequence[Row], metric: str = "exact_match") -> str:
    """A Markdown table; degradation is relative to the reference row, in percent."""
    ref = rows[0]
    lines = ["| kind | method | setting | table bytes | compression vs float32 | exact match | "
             "intent acc | slot F1 | degradation of " + metric.replace("_", " ") + " | .tflite bytes |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r.kind} | {r.method} | {r.setting} | "
            f"{'-' if r.table_bytes is None else f'{r.table_bytes:,}'} | {_pct(r.rate)} | "
            + " | ".join(_pct(r.metrics.get(k)) for k in METRICS)
            + f" | {_pct(r.degradation(ref, metric))} | "
            f"{'-' if r.model_bytes is None else f'{r.model_bytes:,}'} |")
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Row], path: str, metric: str = "exact_match", title: str = "") -> str:
    """PNG: left, table compression rate against relative degradation per method; right, every
    model's int8 .tflite bytes against the metric (projection models on the same axis)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ref = rows[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5))
    by_method: Dict[str, List[Row]] = {}
    for r in rows[1:]:
        if r.rate is not None:
            by_method.setdefault(r.method, []).append(r)
    markers = dict(zip(sorted(by_method), "osD^v<>ph*"))
    for method, rs in sorted(by_method.items()):
        rs = sorted(rs, key=lambda r: r.rate)
        pts = [(100 * r.rate, 100 * r.degradation(ref, metric)) for r in rs
               if r.degradation(ref, metric) is not None]
        if pts:
            # Task-aware rows may come from different trainings: points, not a curve.
            task = method == "task_aware_codes"
            left.plot(*zip(*pts), marker="*" if task else markers[method], markersize=11 if task else 6,
                      linestyle="none" if task else "-", label=method.replace("_", " "), linewidth=1)
    left.axvline(97.4, color="grey", linestyle=":", linewidth=1)
    left.axhline(3.7, color="grey", linestyle=":", linewidth=1)
    left.set_xlabel("embedding table compression vs float32 (%)")
    left.set_ylabel(f"relative degradation of {metric.replace('_', ' ')} (%)")
    left.set_yscale("symlog", linthresh=1.0)
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    for r in rows:
        if r.model_bytes and r.metrics.get(metric) is not None and r.kind != "offline":
            right.scatter(r.model_bytes / 1e6, 100 * r.metrics[metric],
                          marker="*" if r.kind == "task_aware" else "o")
            right.annotate(f"{r.method} {r.setting}" if r.kind != "other" else r.setting,
                           (r.model_bytes / 1e6, 100 * r.metrics[metric]), fontsize=7,
                           xytext=(4, 2), textcoords="offset points")
    right.set_xlabel("int8 .tflite bytes (MB)")
    right.set_ylabel(metric.replace("_", " ") + " (%)")
    right.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare_at_size(rows: Sequence[Row], metric: str = "exact_match",
                    slack: float = SIZE_SLACK) -> List[Dict[str, Any]]:
    """Per task-aware row and offline method: the method's best row within `slack` times the
    task-aware table bytes (the baseline gets the larger budget), and whether the codes score
    higher. A method with no setting that small is reported with its smallest size."""
    out = []
    offline_methods = sorted({r.method for r in rows if r.kind == "offline"})
    for t in rows:
        if t.kind != "task_aware" or t.metrics.get(metric) is None:
            continue
        best = best_at_budget([r for r in rows if r.kind == "offline"], int(slack * t.table_bytes), metric)
        for method in offline_methods:
            b = best.get(method)
            smallest = min(r.table_bytes for r in rows if r.method == method)
            out.append({"task_aware": t.setting, "task_aware_bytes": t.table_bytes,
                        "task_aware_score": t.metrics[metric], "method": method,
                        "offline_setting": b.setting if b else None,
                        "offline_bytes": b.table_bytes if b else None,
                        "offline_score": b.metrics[metric] if b else None,
                        "offline_smallest_bytes": smallest,
                        "codes_win": None if b is None else t.metrics[metric] > b.metrics[metric]})
    return out


def comparison_table(comparisons: Sequence[Dict[str, Any]], metric: str = "exact_match",
                     slack: float = SIZE_SLACK) -> str:
    """Markdown: task-aware codes against each offline method's best within the size budget."""
    if not comparisons:
        return ""
    lines = [f"Task-aware codes against each offline method's best setting with at most {slack:g}x "
             f"their table bytes ({metric.replace('_', ' ')}):", "",
             "| codes | codes bytes | codes score | offline method | its best setting | its bytes | "
             "its score | codes win |", "|---|---:|---:|---|---|---:|---:|---|"]
    for c in comparisons:
        if c["offline_setting"] is None:
            tail = (f"none this small (smallest {c['offline_smallest_bytes']:,} B) | - | - | "
                    f"n/a |")
        else:
            tail = (f"{c['offline_setting']} | {c['offline_bytes']:,} | {_pct(c['offline_score'])} | "
                    f"{'yes' if c['codes_win'] else 'NO'} |")
        lines.append(f"| {c['task_aware']} | {c['task_aware_bytes']:,} | {_pct(c['task_aware_score'])} | "
                     f"{c['method']} | " + tail)
    return "\n".join(lines) + "\n"


def write(rows: Sequence[Row], out_prefix: str, metric: str, meta: Dict[str, Any]) -> Dict[str, str]:
    """OUT.json, OUT.md and OUT.png."""
    os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
    comparisons = compare_at_size(rows, metric)
    with open(out_prefix + ".json", "w", encoding="utf-8") as f:
        json.dump(dict(meta, metric=metric, size_slack=SIZE_SLACK, rows=[r.as_dict() for r in rows],
                       at_equal_size=comparisons), f, indent=1)
    with open(out_prefix + ".md", "w", encoding="utf-8") as f:
        f.write(table(rows, metric))
        if comparisons:
            f.write("\n" + comparison_table(comparisons, metric))
    plot(rows, out_prefix + ".png", metric, meta.get("title", ""))
    return {k: out_prefix + "." + k for k in ("json", "md", "png")}


def best_at_budget(rows: Sequence[Row], budget: int, metric: str = "exact_match") -> Dict[str, Row]:
    """Per method, its best row within `budget` table bytes (for "at equal size" claims)."""
    out: Dict[str, Row] = {}
    for r in rows:
        if r.kind in ("offline", "task_aware") and r.table_bytes is not None and r.table_bytes <= budget:
            v = r.metrics.get(metric)
            if v is not None and (r.method not in out or v > out[r.method].metrics[metric]):
                out[r.method] = r
    return out

