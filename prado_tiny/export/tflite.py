"""Export a trained model folder to one self-contained int8 .tflite, verified.

Steps (`export`):

1. Restore the best weights; build the codepoints-input model (the MinHash projection in the
   graph) with a fixed input shape `[1, T, P, C]` (or `[1, T, C]` without WordPiece).
2. Convert with `TFLITE_BUILTINS_INT8` only, calibrated on `calibration_examples` training
   utterances (the converter needs a representative set even with fake-quant ranges: 64 samples
   clipped activations, 512 did not; `../shared/STACK.md`).
3. Fold the projection's exact int8 casts (`fold_exact_int8_casts`) so no float tensor is left.
4. Embed the metadata an app needs (text encoder with its WordPiece vocabulary, labels, intent
   mode, output names; `prado_tiny.predictor` reads it).
5. Verify: scan the flatbuffer (no float, custom or Flex op; `check_builtin_int8`), and compare
   the .tflite with the Keras model on development examples (`parity`).
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from prado_tiny.data.example import Example
from prado_tiny.evaluation import headline, score

FORMAT = "prado-tiny-model"
VERSION = 1


def input_array(encoder, spec: Dict[str, Any], tokens: Sequence[str]) -> np.ndarray:
    """The model input of one token list: `[T, P, C]` subwords, `[T, C]` codepoints or `[T, P]`
    piece ids."""
    return encoder.encode_form(spec["input"], tokens)


def metadata_document(spec: Dict[str, Any], vocab, encoder, output_names: Dict[str, str]) -> dict:
    return {"format": FORMAT, "version": VERSION, "model_type": spec["model_type"],
            "model_config": spec["config"], "text_encoder": encoder.get_config(),
            "input": spec["input"], "labels": vocab.get_config(),
            "intent_mode": spec["intent_mode"], "intent_threshold": 0.5, "outputs": output_names,
            "qat": bool(spec.get("qat"))}


def convert(keras_model, samples: List[Any], int8_float_inputs: bool = False) -> bytes:
    """int8 conversion, builtin ops only, exact int8 casts folded.

    `samples`: representative inputs, each an array `[1, ...]` (a single-input model) or a dict
    `{input name: [1, ...] array}`. `int8_float_inputs`: float inputs become int8 too (a
    pQRNN-MAtt decoder step's state); integer inputs stay int32 either way.
    """
    import tensorflow as tf

    from prado_tiny.export.inspect import fold_exact_int8_casts
    from prado_tiny.export.keras_converter import keras_converter
    with keras_converter(keras_model) as conv:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: (s if isinstance(s, dict) else [s] for s in samples)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_float_inputs:
            conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8  # the int32 codepoint input stays int32
        # One scale per weight tensor, as QAT trained them (`quantize_weight` is per tensor): the
        # converter's default per-channel scales re-quantize the same values and add a float
        # scale and an int64 zero point per output channel, about 45 KB in a pNLP-Mixer Base.
        conv._experimental_disable_per_channel_quantization_for_dense_layers = True
        return fold_exact_int8_casts(conv.convert())


@dataclasses.dataclass
class ParityReport:
    """Keras (float, or fake-quant after QAT) against the .tflite on the same examples."""

    examples: int
    keras: Dict[str, Any]
    tflite: Dict[str, Any]
    intent_agreement: float
    tag_agreement: float
    max_intent_logit_diff: float
    mean_intent_logit_diff: float

    @property
    def exact_match_drop(self) -> float:
        """Points of exact match lost by the .tflite (averaged over languages)."""
        return 100.0 * ((self.keras["exact_match"] or 0.0) - (self.tflite["exact_match"] or 0.0))

    def as_dict(self) -> dict:
        return dict(dataclasses.asdict(self), exact_match_drop=self.exact_match_drop)

    def summary(self) -> str:
        k, t = self.keras, self.tflite
        pct = lambda x: "-" if x is None else f"{100 * x:.2f}"  # noqa: E731
        return (f"parity on {self.examples} development examples (Keras -> TFLite): exact match "
                f"{pct(k['exact_match'])} -> {pct(t['exact_match'])} "
                f"(drop {self.exact_match_drop:.2f} points), intent accuracy "
                f"{pct(k['intent_accuracy'])} -> {pct(t['intent_accuracy'])}, slot F1 "
                f"{pct(k['slot_f1'])} -> {pct(t['slot_f1'])}; same intent on "
                f"{100 * self.intent_agreement:.2f}%, same slot tag on {100 * self.tag_agreement:.2f}% "
                f"of tokens; intent logits differ by {self.mean_intent_logit_diff:.4f} on average "
                f"(max {self.max_intent_logit_diff:.4f})")


def tflite_logits(path: str, examples: Sequence[Example]):
    """Per example (intent logits, slot logits [len, S]) from the .tflite."""
    from prado_tiny.predictor import Predictor
    p = Predictor(path)
    out_i, out_s = [], []
    for ex in examples:
        li, ls = p.logits_for_tokens(ex.tokens)
        out_i.append(li)
        out_s.append(ls[:min(len(ex.tokens), p.encoder.max_tokens)])
    return out_i, out_s


def parity(path: str, model, feature_set, vocab, intent_mode: str) -> ParityReport:
    from prado_tiny.evaluation import keras_logits, predictions
    examples = feature_set.examples
    ki, ks = keras_logits(model, feature_set)
    ti, ts = tflite_logits(path, examples)
    kp = predictions(examples, ki, ks, vocab, intent_mode)
    tp = predictions(examples, ti, ts, vocab, intent_mode)
    same_intent = np.mean([a["intent"] == b["intent"] for a, b in zip(kp, tp)])
    tags = [(x == y) for a, b in zip(kp, tp) for x, y in zip(a["slots"], b["slots"])]
    diffs = [float(np.abs(np.asarray(a) - np.asarray(b)).max()) for a, b in zip(ki, ti)]
    return ParityReport(len(examples), headline(score(examples, kp, vocab)),
                        headline(score(examples, tp, vocab)), float(same_intent),
                        float(np.mean(tags)) if tags else 1.0, float(max(diffs)), float(np.mean(diffs)))


def export(model_dir: str, output: str, calibration: Sequence[Example],
           dev: Optional[Sequence[Example]] = None, keep_tensor_names: bool = False,
           converted: Optional[Dict[str, bytes]] = None) -> Dict[str, Any]:
    """Exports `model_dir` to `output`; returns the report (size, ops, parity).

    `keep_tensor_names`: keep the converter's names of internal tensors (for debugging with
    a model viewer; they add about 19 KB). Input and output names are always kept.
    `converted`: a dict that receives the converter's output before the metadata is embedded
    (`"model"`: int8 bytes with every tensor name), for `tensor_report` without a second
    conversion."""
    from prado_tiny.export.inspect import check_builtin_int8
    from prado_tiny.export.metadata import embed_metadata
    from prado_tiny.models import model_dir as md
    from prado_tiny.models.base import export_model

    t0 = time.time()
    model, spec, vocab, encoder = md.load(model_dir)
    c = spec["config"]
    shape = encoder.input_shape(spec["input"])
    if encoder.max_tokens != c["max_seq_len"]:
        raise ValueError(f"{model_dir}: text encoder max_tokens={encoder.max_tokens} differs from "
                         f"max_seq_len={c['max_seq_len']}")
    samples = [input_array(encoder, spec, ex.tokens)[None] for ex in calibration]
    data = convert(export_model(model, shape, input_name=md.input_name(spec)), samples)
    report = check_builtin_int8(data, raise_on_violation=True)
    if converted is not None:
        converted["model"] = data
    names = _output_names(data)
    data = embed_metadata(data, metadata_document(spec, vocab, encoder, names),
                          keep_tensor_names=keep_tensor_names)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    tmp = output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, output)
    result = {"output": output, "bytes": len(data), "ops": len(report.ops),
              "op_counts": report.op_counts, "builtin_int8": report.ok,
              "input_shape": [1, *shape], "calibration_examples": len(samples),
              "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables))}
    if dev:
        dev_set = md.featurize(dev, spec, encoder, vocab)
        result["parity"] = parity(output, model, dev_set, vocab, spec["intent_mode"]).as_dict()
    result["seconds"] = round(time.time() - t0, 1)
    return result


def _output_names(data: bytes) -> Dict[str, str]:
    """Output tensor names by role: rank 2 is the intent, rank 3 the slots."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data)
    out = {}
    for d in it.get_output_details():
        out["intent" if len(d["shape"]) == 2 else "slots"] = d["name"]
    return out
