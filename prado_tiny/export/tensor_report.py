"""Per-tensor int8 quantization error: where does an int8 .tflite drift from its Keras model?

When the exported model loses accuracy against the Keras model (the parity report of
prado-export), the loss is made somewhere in the graph. This module runs a float TFLite
conversion and the int8 conversion of the same Keras model side by side on the same inputs,
keeps every intermediate tensor (`experimental_preserve_all_tensors`), and compares each int8
tensor, dequantized, with the float tensor of the same name.

QAT simulates the rounding of the tensors it knows about (weights, layer outputs it wraps in
fake-quant), and those come out of the converter with an error of about half an LSB. A tensor the
converter rounds that QAT did not simulate (the internals of a LayerNorm, raw attention or
pointer scores, a sum of two quantized tensors with a different range) carries an error the
model never learned to absorb: it shows up here with a large relative RMS or an error of many
LSBs, often on a tensor the calibration clipped. Errors add up along the graph, so the first
tensor (in graph order) whose error jumps is the one to look at.

`tensor_errors(float_model, int8_model, samples)` gives one row per tensor, `format_report(rows)`
a text table, and `tensor_report(model_dir, calibration, dev)` does the conversions of a prado-train
model folder with the settings of prado-export (`prado-export --tensor_report=FILE`). For a
pQRNN-MAtt the report covers the one-step decoder, where the drift lives.
"""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional, Sequence, Union

import numpy as np

Sample = Union[np.ndarray, Dict[str, np.ndarray]]

_INT_QUANTIZED = ("int8", "int16")


def _input_key(name: str, keys: Sequence[str]) -> str:
    """The sample key of the interpreter input `name` (`serving_default_<key>:0`): the key itself
    when it is the whole name, else the longest key the name contains (`mean_10` over `mean_1`)."""
    base = name[len("serving_default_"):] if name.startswith("serving_default_") else name
    base = base.rsplit(":", 1)[0]
    if base in keys:
        return base
    matches = [k for k in keys if k in name]
    if not matches:
        raise KeyError(f"no sample key matches the model input {name!r} (keys: {sorted(keys)})")
    return max(matches, key=len)


def _set_inputs(it, sample: Sample) -> None:
    """Feeds `sample` to the interpreter `it`: float values are quantized for int8 inputs (with
    the input's scale and zero point), other values are cast to the input's dtype."""
    details = it.get_input_details()
    if not isinstance(sample, dict):
        if len(details) != 1:
            raise ValueError(f"the model has {len(details)} inputs: pass each sample as a dict")
    for d in details:
        x = sample[_input_key(d["name"], list(sample))] if isinstance(sample, dict) else sample
        x = np.asarray(x).reshape(d["shape"])
        dtype = np.dtype(d["dtype"])
        scale, zero_point = d["quantization"]
        if dtype.kind == "i" and np.issubdtype(x.dtype, np.floating) and scale:
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
        it.set_tensor(d["index"], x.astype(dtype))


def _scales(detail: dict) -> Optional[np.ndarray]:
    """The tensor's scales broadcastable to its shape (one per channel, or one), or None when it
    is not quantized."""
    q = detail["quantization_parameters"]
    scales = np.asarray(q["scales"], np.float64)
    if scales.size == 0 or not np.all(scales > 0):
        return None
    if scales.size == 1:
        return scales.reshape(())
    shape = [1] * len(detail["shape"])
    shape[int(q["quantized_dimension"])] = scales.size
    return scales.reshape(shape)


def _dequantize(x: np.ndarray, detail: dict, scales: np.ndarray) -> np.ndarray:
    zp = np.asarray(detail["quantization_parameters"]["zero_points"], np.float64)
    zp = 0.0 if zp.size == 0 else zp.reshape(()) if zp.size == 1 else zp.reshape(scales.shape)
    return (x.astype(np.float64) - zp) * scales


def _unique_by_name(details: Sequence[dict]) -> Dict[str, dict]:
    """Tensor details by name, without the names several tensors share (ambiguous, and empty
    names of a stripped model)."""
    counts: Dict[str, int] = {}
    for d in details:
        counts[d["name"]] = counts.get(d["name"], 0) + 1
    return {d["name"]: d for d in details if d["name"] and counts[d["name"]] == 1}


def tensor_errors(float_model: bytes, int8_model: bytes, samples: List[Sample]) -> List[Dict[str, Any]]:
    """The quantization error of every int8 (or int16) tensor against the float tensor of the
    same name, over `samples`.

    Args:
      float_model: the float TFLite conversion of the Keras model (no optimizations:
        `keras_converter(m)`, or `tf.lite.TFLiteConverter.from_keras_model(m)`, converted).
      int8_model: the int8 conversion of the same Keras model, tensor names kept (the
        converter's output, before `embed_metadata` strips them).
      samples: model inputs, each a float/int array (single-input model; the batch dimension may
        be left out) or a dict `{input name: array}` (multi-input; a key matches the interpreter
        input `serving_default_<key>:0`, the longest contained key otherwise). Float values are
        quantized for int8 inputs.

    Returns: one dict per tensor, in the int8 model's tensor order, for the tensors both models
    hold under the same (unique) name with the same shape, float32 in the float model and
    quantized int8/int16 in the int8 one (int32 biases and shapes are left out; constant weights
    are in): `name`, `shape`, `relative_rms` (sqrt(sum (q - f)^2 / sum f^2) over all samples; 0
    when both are all zero, inf when only the float tensor is), `max_abs_error`, `scale` (the int8
    tensor's scale; the largest for per-channel scales) and `max_error_lsb` (the largest error in
    units of the element's own scale: `max_abs_error / scale` for a per-tensor scale).
    """
    from ai_edge_litert.interpreter import Interpreter

    if not samples:
        raise ValueError("no samples")
    with warnings.catch_warnings():  # "for debugging purposes only": that is what this is
        warnings.filterwarnings("ignore", message=".*experimental_preserve_all_tensors")
        fl = Interpreter(model_content=float_model, experimental_preserve_all_tensors=True)
        q8 = Interpreter(model_content=int8_model, experimental_preserve_all_tensors=True)
    fl.allocate_tensors()
    q8.allocate_tensors()
    fdet = _unique_by_name(fl.get_tensor_details())
    pairs = []  # (int8 detail, float detail, scales) in the int8 model's tensor order
    for d in sorted(_unique_by_name(q8.get_tensor_details()).values(), key=lambda d: d["index"]):
        f = fdet.get(d["name"])
        if f is None or np.dtype(f["dtype"]) != np.float32 or np.dtype(d["dtype"]).name not in _INT_QUANTIZED:
            continue
        scales = _scales(d)
        if scales is not None and tuple(f["shape"]) == tuple(d["shape"]):
            pairs.append((d, f, scales))
    acc = {d["name"]: [0.0, 0.0, 0.0, 0.0] for d, _, _ in pairs}  # sse, sum f^2, max abs, max lsb
    for sample in samples:
        for it in (fl, q8):
            _set_inputs(it, sample)
            it.invoke()
        for d, f, scales in pairs:
            try:
                qv, fv = q8.get_tensor(d["index"]), fl.get_tensor(f["index"])
            except ValueError:  # no data (e.g. a tensor the runtime never allocated)
                continue
            err = _dequantize(qv, d, scales) - fv.astype(np.float64)
            a = acc[d["name"]]
            a[0] += float(np.sum(err * err))
            a[1] += float(np.sum(np.square(fv, dtype=np.float64)))
            if err.size:
                a[2] = max(a[2], float(np.max(np.abs(err))))
                a[3] = max(a[3], float(np.max(np.abs(err) / scales)))
    rows = []
    for d, _, scales in pairs:
        sse, ssf, max_abs, max_lsb = acc[d["name"]]
        rel = math.sqrt(sse / ssf) if ssf > 0 else (0.0 if sse == 0 else math.inf)
        rows.append({"name": d["name"], "shape": [int(n) for n in d["shape"]], "relative_rms": rel,
                     "max_abs_error": max_abs, "scale": float(np.max(scales)),
                     "max_error_lsb": max_lsb})
    return rows


def format_report(rows: Sequence[Dict[str, Any]], top: Optional[int] = None) -> str:
    """A plain text table of `tensor_errors` rows, in graph order.

    Args:
      rows: `tensor_errors` output.
      top: only the `top` rows of largest relative RMS (still listed in graph order); all when
        None.
    """
    keep = list(range(len(rows)))
    if top is not None:
        keep = sorted(sorted(keep, key=lambda i: -rows[i]["relative_rms"])[:max(int(top), 0)])
    lines = [f"{'rel. RMS':>10} {'max err (LSB)':>14}  {'shape':<16} name"]
    for i in keep:
        r = rows[i]
        name = r["name"] if len(r["name"]) <= 100 else r["name"][:97] + "..."
        shape = "x".join(str(n) for n in r["shape"]) or "scalar"
        lines.append(f"{r['relative_rms']:>10.4f} {r['max_error_lsb']:>14.1f}  {shape:<16} {name}")
    return "\n".join(lines)


def _float_convert(keras_model) -> bytes:
    from prado_tiny.export.keras_converter import keras_converter
    with keras_converter(keras_model) as conv:
        return conv.convert()


def tensor_report(model_dir: str, calibration: Sequence, dev: Optional[Sequence] = None,
                  max_samples: Optional[int] = None, int8_model: Optional[bytes] = None
                  ) -> List[Dict[str, Any]]:
    """`tensor_errors` of a prado-train model folder, converted as prado-export converts it.

    Unless `int8_model` is given, the int8 model is converted again with the export's converter
    settings and calibration
    (`prado_tiny.export.tflite.convert` on the calibration inputs; for a pQRNN-MAtt the one-step
    decoder, `prado_tiny.models.pqrnn_matt._convert` on the step inputs of the Keras model's greedy
    decoding of the calibration utterances, as `export_pqrnn_matt` does), next to a float
    conversion of the same Keras model. The errors are measured on `dev` when given, else on the
    calibration examples.

    Args:
      model_dir: a prado-train model folder.
      calibration: the `Example`s prado-export calibrated with (the same list, so that the int8
        model is calibrated as the exported one was).
      dev: `Example`s the errors are measured on (default: `calibration`).
      max_samples: most inputs measured: flat models one per example (default 64), pQRNN-MAtt
        decoder steps drawn from the greedy decoding of as many examples (default 256).
      int8_model: the int8 conversion prado-export just made, tensor names kept (the
        `converted` dict of `export`: its `"model"`, or a pQRNN-MAtt's `"decoder"`); when
        given it is measured as it is instead of being converted again.
    """
    import inspect

    from prado_tiny.models import model_dir as md

    if not calibration:
        raise ValueError("no calibration examples")
    model, spec, _, encoder = md.load(model_dir)
    seq2seq = md.is_seq2seq(spec)
    n = max_samples or (256 if seq2seq else 64)
    examples = list(dev or calibration)
    # A random subset (seeded): a split's first examples are often one language or one intent.
    examples = [examples[i] for i in sorted(np.random.default_rng(0).permutation(len(examples))[:n])]
    if seq2seq:
        from prado_tiny.export import seq2seq as s2s
        from prado_tiny.models.pqrnn_matt import _convert, record_step_samples, step_export_model
        # prado-export's calibration of the decoder: the steps of the calibration utterances, at
        # most as many as `seq2seq.export` uses by default (what prado-export runs).
        max_steps = inspect.signature(s2s.export).parameters["max_step_samples"].default
        cp = encoder.encode_tokens_batch([list(ex.tokens) for ex in calibration])
        keras_model = step_export_model(model)
        int8 = int8_model or _convert(keras_model, record_step_samples(model, cp, max_steps))
        samples = record_step_samples(model, encoder.encode_tokens_batch(
            [list(ex.tokens) for ex in examples]), n)
    else:
        from prado_tiny.export.tflite import convert, input_array
        from prado_tiny.models.base import export_model
        keras_model = export_model(model, encoder.input_shape(spec["input"]),
                                   input_name=md.input_name(spec))
        int8 = int8_model or convert(
            keras_model, [input_array(encoder, spec, ex.tokens)[None] for ex in calibration])
        samples = [input_array(encoder, spec, ex.tokens)[None] for ex in examples]
    return tensor_errors(_float_convert(keras_model), int8, samples)


__all__: List[str] = ["tensor_errors", "format_report", "tensor_report"]
