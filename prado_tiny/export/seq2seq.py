"""Export a trained pQRNN-MAtt folder to an int8 encoder .tflite and an int8 one-step decoder
.tflite, with metadata, verified.

Files: `--output FILE.tflite` is the encoder (codepoints -> the decoder cache: cross-attention
keys and values per layer, pointer keys, source mask); the decoder is written beside it as
`FILE.decoder.tflite` (`decoder_path`): previous id, step count, running mean per layer and the
cache in; logits and the new state out. Both carry the same metadata document (the text encoder,
the output vocabulary, the model config, the decoding defaults, each file's role, the other
file's name and a `pair_id` that ties the two together), so that `prado_tiny.predictor.Predictor`
on the encoder finds and checks its decoder, and a host beam search
(`prado_tiny.seq2seq_decoding`) drives the pair with nothing else.

Steps (`export`):

1. Restore the best weights (fake-quant on when the model was trained with QAT).
2. `prado_tiny.models.pqrnn_matt.export_pqrnn_matt`: the encoder calibrated on training
   utterances, the decoder on the step inputs of the Keras model's own greedy decoding of them;
   builtin int8 ops only, checked on the flatbuffers (`check_builtin_int8`).
3. Embed the metadata in both, write them.
4. Parity: tree exact match of the same beam search (width and length penalty of the model's
   decoding defaults, constrained to well-formed trees) over the Keras model and over the two
   .tflite files, on development examples.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from prado_tiny.data.example import Example

FORMAT = "prado-tiny-model"
VERSION = 1
DEFAULT_DECODING = {"beam_width": 4, "length_penalty_alpha": 0.6}


def decoder_path(output: str) -> str:
    """The decoder file written beside the encoder `output`: `x/m.tflite` -> `x/m.decoder.tflite`."""
    root, ext = os.path.splitext(output)
    return (root if ext == ".tflite" else output) + ".decoder.tflite"


def decoding_defaults(spec: Dict[str, Any]) -> Dict[str, Any]:
    """Beam width and length penalty stored with the model (prado-train --beam_width,
    --length_penalty_alpha), plus the decoder's length and the tree constraints."""
    d = dict(DEFAULT_DECODING, **(spec.get("decoding") or {}))
    return {"beam_width": int(d["beam_width"]), "length_penalty_alpha": float(d["length_penalty_alpha"]),
            "max_target_len": int(spec["config"]["max_target_len"]), "constrain": True}


def metadata_document(spec: Dict[str, Any], vocab, encoder, role: str, encoder_file: str,
                      decoder_file: str, pair_id: str) -> dict:
    """The metadata of either file of the pair (`role`: `encoder` or `decoder`)."""
    return {"format": FORMAT, "version": VERSION, "model_type": spec["model_type"],
            "task": "seq2seq", "role": role, "encoder_file": encoder_file,
            "decoder_file": decoder_file, "pair_id": pair_id, "model_config": spec["config"],
            "text_encoder": encoder.get_config(), "input": spec["input"],
            "output_vocab": vocab.to_dict(), "decoding": decoding_defaults(spec),
            "qat": bool(spec.get("qat"))}


@dataclasses.dataclass
class Seq2SeqParityReport:
    """The Keras model (fake-quant after QAT) against the .tflite pair, same beam search."""

    examples: int
    beam_width: int
    length_penalty_alpha: float
    keras: Dict[str, Any]
    tflite: Dict[str, Any]
    same_parse: float

    @property
    def exact_match_drop(self) -> float:
        """Points of tree exact match lost by the .tflite pair (averaged over languages)."""
        return 100.0 * ((self.keras["tree_exact_match"] or 0.0) - (self.tflite["tree_exact_match"] or 0.0))

    def as_dict(self) -> dict:
        return dict(dataclasses.asdict(self), exact_match_drop=self.exact_match_drop,
                    tree_exact_match_drop=self.exact_match_drop)

    def summary(self) -> str:
        k, t = self.keras, self.tflite
        pct = lambda x: "-" if x is None else f"{100 * x:.2f}"  # noqa: E731
        return (f"parity on {self.examples} development examples (Keras -> TFLite, beam "
                f"{self.beam_width}, length penalty {self.length_penalty_alpha}): tree exact match "
                f"{pct(k['tree_exact_match'])} -> {pct(t['tree_exact_match'])} (drop "
                f"{self.exact_match_drop:.2f} points), flat exact match {pct(k['exact_match'])} -> "
                f"{pct(t['exact_match'])}; same parse on {100 * self.same_parse:.2f}% of examples")


def parity(encoder_file: str, model, feature_set, vocab, beam_width: int,
           length_penalty_alpha: float) -> Seq2SeqParityReport:
    """Tree exact match of the Keras model and of the .tflite pair (`Predictor` on
    `encoder_file`) with the same constrained beam search on `feature_set`'s examples."""
    from prado_tiny.evaluation import keras_decode, score_seq2seq, seq2seq_headline, seq2seq_predictions
    from prado_tiny.predictor import Predictor
    examples = feature_set.examples
    keras_ids = keras_decode(model, feature_set, vocab, beam_width, length_penalty_alpha)
    lite_ids = Predictor(encoder_file).decode_token_lists([ex.tokens for ex in examples],
                                                          beam_width, length_penalty_alpha)
    kp = seq2seq_predictions(examples, keras_ids, vocab)
    tp = seq2seq_predictions(examples, lite_ids, vocab)
    same = float(np.mean([a["parse"] == b["parse"] for a, b in zip(kp, tp)])) if examples else 1.0
    return Seq2SeqParityReport(len(examples), int(beam_width), float(length_penalty_alpha),
                               seq2seq_headline(score_seq2seq(examples, kp)),
                               seq2seq_headline(score_seq2seq(examples, tp)), same)


def _write(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def export(model_dir: str, output: str, calibration: Sequence[Example],
           dev: Optional[Sequence[Example]] = None, keep_tensor_names: bool = False,
           max_step_samples: int = 2048, converted: Optional[Dict[str, bytes]] = None
           ) -> Dict[str, Any]:
    """Exports the pQRNN-MAtt of `model_dir` to `output` (encoder) and `decoder_path(output)`;
    returns the report (sizes, ops, parity). Raises `NotBuiltinInt8Error` when a file is not
    builtin-only integer. `converted`: a dict that receives the converter's outputs before the
    metadata is embedded (`"encoder"`, `"decoder"`: int8 bytes with every tensor name), for
    `tensor_report` without a second conversion."""
    from prado_tiny.export.inspect import check_builtin_int8
    from prado_tiny.export.metadata import embed_metadata
    from prado_tiny.models import model_dir as md
    from prado_tiny.models.pqrnn_matt import export_pqrnn_matt

    t0 = time.time()
    model, spec, vocab, encoder = md.load(model_dir)
    c = spec["config"]
    if encoder.max_tokens != c["max_seq_len"]:
        raise ValueError(f"{model_dir}: text encoder max_tokens={encoder.max_tokens} differs from "
                         f"max_seq_len={c['max_seq_len']}")
    if not calibration:
        raise ValueError("no calibration examples")
    cp = encoder.encode_tokens_batch([list(ex.tokens) for ex in calibration])
    out = export_pqrnn_matt(model, cp, max_step_samples=max_step_samples)
    if converted is not None:
        converted.update(encoder=out["encoder"], decoder=out["decoder"])
    dec_output = decoder_path(output)
    pair_id = hashlib.sha256(out["encoder"] + out["decoder"]).hexdigest()[:16]
    names = dict(encoder_file=os.path.basename(output), decoder_file=os.path.basename(dec_output),
                 pair_id=pair_id)
    files = {}
    for role, path in (("encoder", output), ("decoder", dec_output)):
        doc = metadata_document(spec, vocab, encoder, role, **names)
        files[role] = embed_metadata(out[role], doc, keep_tensor_names=keep_tensor_names)
        _write(path, files[role])
    reports = {role: check_builtin_int8(data, raise_on_violation=True) for role, data in files.items()}
    op_counts: Dict[str, int] = {}
    for r in reports.values():
        for name, n in r.op_counts.items():
            op_counts[name] = op_counts.get(name, 0) + n
    result = {"output": output, "decoder_output": dec_output, "model_type": spec["model_type"],
              "bytes": sum(len(d) for d in files.values()),
              "encoder_bytes": len(files["encoder"]), "decoder_bytes": len(files["decoder"]),
              "ops": sum(len(r.ops) for r in reports.values()), "op_counts": op_counts,
              "encoder_op_counts": reports["encoder"].op_counts,
              "decoder_op_counts": reports["decoder"].op_counts,
              "builtin_int8": all(r.ok for r in reports.values()),
              "input_shape": [1, *encoder.input_shape(spec["input"])],
              "calibration_examples": len(calibration), "pair_id": pair_id,
              "decoding": decoding_defaults(spec),
              "parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables))}
    if dev:
        dev_set = md.featurize(dev, spec, encoder, vocab)
        d = result["decoding"]
        result["parity"] = parity(output, model, dev_set, vocab, d["beam_width"],
                                  d["length_penalty_alpha"]).as_dict()
    result["seconds"] = round(time.time() - t0, 1)
    return result


def parity_summary(parity_dict: Dict[str, Any]) -> str:
    """`Seq2SeqParityReport.summary` of a report's `parity` entry."""
    fields = {f.name for f in dataclasses.fields(Seq2SeqParityReport)}
    return Seq2SeqParityReport(**{k: v for k, v in parity_dict.items() if k in fields}).summary()


__all__: List[str] = ["decoder_path", "decoding_defaults", "metadata_document", "Seq2SeqParityReport",
                      "parity", "export", "parity_summary"]
