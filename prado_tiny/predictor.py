"""Text in, intent and slots out, from one exported .tflite file and nothing else.

The exporter embeds a metadata document in the flatbuffer (`prado_tiny.export.metadata`); it holds
everything needed to go from text to the model's input and from its outputs to labels:

    {
     "format": "prado-tiny-model", "version": 1,
     "model_type": "pnlp_mixer",               # informational
     "text_encoder": {...},                      # TextEncoder.get_config()
     "input": "subwords" | "codepoints",         # which TextEncoder array feeds input 0
     "labels": {...},                            # LabelVocab.get_config()
     "intent_mode": "joint" | "multi_label",
     "intent_threshold": 0.5,                    # multi_label only
     "outputs": {"intent": "<tensor name>", "slots": "<tensor name>"}
    }

Input 0 is int32 `[1, max_tokens, max_pieces, max_chars]` (subwords) or `[1, max_tokens,
max_chars]` (codepoints). The outputs are intent logits `[1, num_intents]` and slot logits
`[1, max_tokens, num_slot_tags]`, int8 (dequantized with the tensor's scale and zero point) or
float32; they are found by the names in `outputs`, else by rank (2 = intent, 3 = slots).

Decoding:

* joint: softmax over the intents, the most probable one.
* multi_label: a sigmoid per (atomic) intent; every intent with p >= `intent_threshold`, joined
  with `#` (`normalize_intent`: sorted, unique); if none passes, the most probable one. The score
  is the lowest probability among the chosen intents (every one of them is at least that sure).
* slots: per encoded token, the most probable tag; tokens beyond `max_tokens` are `O`. Tags become
  spans with conlleval's rules (`bio_to_spans`: an `I-X` after `O` starts a chunk), with character
  offsets into the original text.
* The reserved `<unk>` label (intents and slot tags) is never predicted: it only stands for labels
  unseen in training, so its probability is left out of the choice (the probabilities reported are
  still those of the full softmax).

A pQRNN-MAtt export (`prado-export` of a `--model=pqrnn_matt` folder) is a pair: give the
Predictor the encoder file; it finds the decoder beside it (the name in the metadata, else
`FILE.decoder.tflite`), checks that the two belong together (`pair_id`), and runs a constrained
beam search on the host (`prado_tiny.seq2seq_decoding`, width and length penalty from the
metadata). `predict` then also returns the decoupled `parse`; `intent`, `tags` and `slots` are its
flat frame (the root intent; each top-level slot spans the tokens from the first to the last one
it copies, nested intents included, as MTOP's flat parses do).

Only `ai_edge_litert` and numpy are imported: no TensorFlow at inference time.

Example:

>>> p = Predictor("model.tflite")  # doctest: +SKIP
>>> r = p.predict("wake me up at 7 am")  # doctest: +SKIP
>>> r.intent, [(s["slot"], s["text"]) for s in r.slots]  # doctest: +SKIP
('IN:CREATE_ALARM', [('SL:DATE_TIME', 'at 7 am')])
"""
from __future__ import annotations

import dataclasses
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from prado_tiny.data.align import bio_to_spans
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import UNK, LabelVocab, VocabError, normalize_intent
from prado_tiny.export.metadata import MetadataError, read_metadata

FORMAT = "prado-tiny-model"
VERSION = 1
INPUT_FORMS = TextEncoder.INPUT_FORMS
INTENT_MODES = ("joint", "multi_label")
SEQ2SEQ_TYPES = ("pqrnn_matt",)
TOP_K = 5
EMPTY_MESSAGE = "empty utterance: nothing to classify"


@dataclasses.dataclass
class Prediction:
    """What `Predictor.predict` returns for one utterance.

    Attributes:
      text: the input, unchanged.
      tokens: every token of the text (also those beyond the model's `max_tokens`).
      offsets: `[start, end)` character offsets of each token into `text`.
      intent: the predicted intent (`a#b` for several in multi_label mode).
      intent_score: its probability (multi_label: the lowest of the chosen intents').
      intents: the top-5 `(label, probability)`, most probable first, `<unk>` left out.
      tags: one BIO tag per token (`O` beyond `max_tokens`).
      slots: `{"slot", "text", "start", "end", "score"}` per span; `text == text[start:end]`,
        `score` is the mean probability of the span's tags.
      truncated: the text had more tokens than `max_tokens` (the rest were not seen by the model).
      parse: seq2seq models only: the decoupled parse (`[IN:X [SL:Y words ] ]`, MTOP spelling);
        None for intent/slot models. `intent_score` is then the probability of the whole parse
        under the (constrained) model and `intents` holds just its intent.
    """

    text: str
    tokens: List[str]
    offsets: List[Tuple[int, int]]
    intent: str
    intent_score: float
    intents: List[Tuple[str, float]]
    tags: List[str]
    slots: List[Dict[str, Any]]
    truncated: bool
    parse: Optional[str] = None

    def as_dict(self) -> Dict[str, Any]:
        """A JSON-able dict (lists instead of tuples, so `json.loads(json.dumps(d)) == d`);
        `parse` only when there is one."""
        d = {"text": self.text, "tokens": list(self.tokens),
             "offsets": [[int(s), int(e)] for s, e in self.offsets],
             "intent": self.intent, "intent_score": float(self.intent_score),
             "intents": [[label, float(p)] for label, p in self.intents],
             "tags": list(self.tags), "slots": [dict(s) for s in self.slots],
             "truncated": bool(self.truncated)}
        if self.parse is not None:
            d["parse"] = self.parse
        return d


class Predictor:
    """Runs an exported prado_tiny .tflite on raw text.

    Thread-safe (one interpreter, calls are serialised); for parallel throughput create one
    `Predictor` per thread.

    Args:
      path_to_tflite: the exported model, with its prado_tiny metadata.
      num_threads: interpreter threads (1 suits tiny models: threads cost more than they save).

    Raises:
      FileNotFoundError: the file does not exist (the message names it; IsADirectoryError, a
        subclass of OSError, for a folder).
      MetadataError: the file has no prado_tiny metadata, or it does not fit the model.

    Example:
    >>> p = Predictor("model.tflite")  # doctest: +SKIP
    >>> p.predict("set an alarm for 7 pm").as_dict()  # doctest: +SKIP
    """

    def __init__(self, path_to_tflite: Union[str, "os.PathLike[str]"], num_threads: int = 1):
        path = os.fspath(path_to_tflite)
        if os.path.isdir(path):
            raise IsADirectoryError(f"{path}: is a folder, not a .tflite file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: model file not found")
        self.path = path
        self.metadata = read_metadata(path)  # MetadataError naming the file
        self._lock = threading.Lock()
        self.seq2seq = self.metadata.get("model_type") in SEQ2SEQ_TYPES
        if self.seq2seq:
            self._configure_seq2seq(self.metadata, num_threads)
            return
        self._configure(self.metadata)
        self._interpreter = self._make_interpreter(path, num_threads)

    # ----------------------------------------------------------------- set-up

    def _fail(self, message: str) -> MetadataError:
        return MetadataError(f"{self.path}: {message}")

    def _configure(self, doc: Dict[str, Any]) -> None:
        if doc.get("format") != FORMAT:
            raise self._fail(f"metadata format is {doc.get('format')!r}, expected {FORMAT!r}")
        if doc.get("version") != VERSION:
            raise self._fail(f"metadata version {doc.get('version')!r} is not supported "
                             f"(this release reads {VERSION})")
        missing = [k for k in ("text_encoder", "input", "labels") if k not in doc]
        if missing:
            raise self._fail(f"metadata lacks {', '.join(missing)}")
        try:
            self.encoder = TextEncoder.from_config(doc["text_encoder"])
            self.vocab = LabelVocab.from_config(doc["labels"])
        except (TypeError, ValueError, VocabError) as e:
            raise self._fail(f"bad metadata: {e}") from e
        self.input_form = doc["input"]
        if self.input_form not in INPUT_FORMS:
            raise self._fail(f"metadata 'input' must be one of {INPUT_FORMS}, got {self.input_form!r}")
        if self.input_form in ("subwords", "piece_ids") and self.encoder.wordpiece is None:
            raise self._fail(f"metadata 'input' is {self.input_form!r} but the text encoder has no "
                             f"vocabulary")
        self.intent_mode = doc.get("intent_mode", "joint")
        if self.intent_mode not in INTENT_MODES:
            raise self._fail(f"metadata 'intent_mode' must be one of {INTENT_MODES}, "
                             f"got {self.intent_mode!r}")
        self.intent_threshold = float(doc.get("intent_threshold", 0.5))
        self.model_type = doc.get("model_type")
        self._intent_labels = list(self.vocab.intents.labels)
        self._slot_labels = list(self.vocab.slots.labels)
        self._intent_allowed = np.array([x != UNK for x in self._intent_labels])
        self._slot_allowed = np.array([x != UNK for x in self._slot_labels])

    def _make_interpreter(self, path: str, num_threads: int):
        from ai_edge_litert.interpreter import Interpreter

        try:
            it = Interpreter(model_path=path, num_threads=int(num_threads))
            it.allocate_tensors()
        except (RuntimeError, ValueError) as e:
            raise self._fail(f"the interpreter cannot load the model: {e}") from e
        enc = self.encoder
        want = [1, *enc.input_shape(self.input_form)]
        inp = it.get_input_details()[0]
        if _shape(inp) != want or inp["dtype"] != np.int32:
            raise self._fail(f"input 0 is {np.dtype(inp['dtype']).name}{_shape(inp)}, the "
                             f"metadata ({self.input_form}) needs int32{want}")
        self._input_index = inp["index"]
        intent, slots = self._find_outputs(it.get_output_details())
        if _shape(intent) != [1, self.vocab.num_intents]:
            raise self._fail(f"intent output {intent['name']!r} has shape {_shape(intent)}, "
                             f"the label vocabulary needs [1, {self.vocab.num_intents}]")
        if _shape(slots) != [1, enc.max_tokens, self.vocab.num_slot_tags]:
            raise self._fail(f"slot output {slots['name']!r} has shape {_shape(slots)}, "
                             f"expected [1, {enc.max_tokens}, {self.vocab.num_slot_tags}]")
        self._intent_out, self._slots_out = intent, slots
        return it

    def _find_outputs(self, details: List[dict]) -> Tuple[dict, dict]:
        """The intent and slot output details: by the metadata's names, else by rank."""
        names = self.metadata.get("outputs") or {}
        by_name = {d["name"]: d for d in details}
        found = {}
        for role, rank in (("intent", 2), ("slots", 3)):
            d = by_name.get(names.get(role))
            if d is None:
                # The converter may rename tensors (e.g. StatefulPartitionedCall:0).
                of_rank = [x for x in details if len(x["shape"]) == rank]
                if len(of_rank) != 1:
                    raise self._fail(f"cannot find the {role} output: no tensor named "
                                     f"{names.get(role)!r} and {len(of_rank)} of rank {rank} "
                                     f"(outputs: {[x['name'] for x in details]})")
                d = of_rank[0]
            found[role] = d
        if found["intent"]["index"] == found["slots"]["index"]:
            raise self._fail("the intent and slot outputs are the same tensor")
        return found["intent"], found["slots"]

    def _configure_seq2seq(self, doc: Dict[str, Any], num_threads: int) -> None:
        """Encoder metadata, output vocabulary, decoding defaults; finds and checks the decoder."""
        from prado_tiny.data.seq2seq_targets import OutputVocab
        from prado_tiny.seq2seq_decoding import TFLiteStepper
        if doc.get("format") != FORMAT:
            raise self._fail(f"metadata format is {doc.get('format')!r}, expected {FORMAT!r}")
        if doc.get("version") != VERSION:
            raise self._fail(f"metadata version {doc.get('version')!r} is not supported "
                             f"(this release reads {VERSION})")
        missing = [k for k in ("text_encoder", "output_vocab", "decoding", "role") if k not in doc]
        if missing:
            raise self._fail(f"metadata lacks {', '.join(missing)}")
        if doc["role"] != "encoder":
            raise self._fail(f"this is the {doc['role']} of a {doc.get('model_type')} pair; give the "
                             f"Predictor the encoder file ({doc.get('encoder_file')})")
        try:
            self.encoder = TextEncoder.from_config(doc["text_encoder"])
            self.output_vocab = OutputVocab.from_dict(doc["output_vocab"])
        except (TypeError, ValueError, KeyError) as e:
            raise self._fail(f"bad metadata: {e}") from e
        self.input_form = doc.get("input", "codepoints")
        if self.input_form != "codepoints":
            raise self._fail(f"metadata 'input' of a seq2seq model must be 'codepoints', got "
                             f"{self.input_form!r}")
        self.model_type = doc.get("model_type")
        self.vocab = None  # no label vocabulary: labels come from the parse
        self.intent_mode = "joint"
        d = doc["decoding"]
        self.beam_width = int(d.get("beam_width", 4))
        self.length_penalty_alpha = float(d.get("length_penalty_alpha", 0.6))
        self.max_target_len = int(d["max_target_len"])
        folder = os.path.dirname(os.path.abspath(self.path))
        stem, ext = os.path.splitext(self.path)
        candidates = []
        if doc.get("decoder_file"):
            candidates.append(os.path.join(folder, os.path.basename(doc["decoder_file"])))
        candidates.append((stem if ext == ".tflite" else self.path) + ".decoder.tflite")
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise FileNotFoundError(f"{self.path}: the decoder of this {self.model_type} encoder is "
                                    f"not beside it (looked for {', '.join(dict.fromkeys(candidates))})")
        self.decoder_path = found
        dec = read_metadata(found)
        if dec.get("role") != "decoder" or dec.get("pair_id") != doc.get("pair_id"):
            raise self._fail(f"{found} is not the decoder exported with this encoder (pair_id "
                             f"{dec.get('pair_id')!r} != {doc.get('pair_id')!r}, role "
                             f"{dec.get('role')!r})")
        try:
            self._stepper = TFLiteStepper(self.path, found, num_threads=int(num_threads))
        except (RuntimeError, ValueError) as e:
            raise self._fail(f"the interpreter cannot load the model pair: {e}") from e
        if self._stepper.vocab_size != self.output_vocab.size:
            raise self._fail(f"the decoder outputs {self._stepper.vocab_size} ids, the output "
                             f"vocabulary has {self.output_vocab.size}")
        self._stepper.pointer_offset = self.output_vocab.pointer_offset
        self._interpreter = None

    # ----------------------------------------------------------------- seq2seq

    def decode_token_lists(self, token_lists: Sequence[Sequence[str]],
                           beam_width: Optional[int] = None,
                           length_penalty_alpha: Optional[float] = None, chunk: int = 64,
                           return_all: bool = False) -> list:
        """Seq2seq models: output ids per token list (already tokenized text, e.g. a dataset's
        own tokens), by the constrained host beam search over the .tflite pair; width and
        length penalty default to the metadata's. With `return_all`, the ranked
        `seq2seq_decoding.Hypothesis` lists instead."""
        from prado_tiny.seq2seq_decoding import beam_search
        if not self.seq2seq:
            raise TypeError(f"{self.path} is an intent/slot model: use predict or logits_for_tokens")
        width = self.beam_width if beam_width is None else int(beam_width)
        alpha = self.length_penalty_alpha if length_penalty_alpha is None else float(length_penalty_alpha)
        lists = [list(t) for t in token_lists]
        out: list = []
        for lo in range(0, len(lists), chunk):
            cp = self.encoder.encode_tokens_batch(lists[lo:lo + chunk])
            with self._lock:
                hyps = beam_search(self._stepper, cp, width, alpha, self.max_target_len,
                                   self.output_vocab, True, return_all=True)
            for h in hyps:
                out.append(h if return_all else (list(h[0].ids) if h else []))
        return out

    def _predict_seq2seq(self, text: str, encoded) -> Prediction:
        from prado_tiny.evaluation import flat_from_ids
        hyps = self.decode_token_lists([encoded.tokens[:self.encoder.max_tokens]], return_all=True)[0]
        best = hyps[0] if hyps else None
        ids = best.ids if best else []
        decoded = self.output_vocab.decode(ids, encoded.tokens)
        n = len(encoded.tokens)
        intent, tags, score = "", ["O"] * n, 0.0
        if decoded.parse is not None:
            # Constrained search: a well-formed tree whose slots span their pointers' tokens.
            intent, tags = flat_from_ids(self.output_vocab, ids, n)
            score = float(np.exp(best.log_prob))
        slots = []
        for label, first, stop in bio_to_spans(tags):
            start, end = encoded.offsets[first][0], encoded.offsets[stop - 1][1]
            slots.append({"slot": label, "text": text[start:end], "start": int(start),
                          "end": int(end), "score": score})
        return Prediction(text=text, tokens=list(encoded.tokens),
                          offsets=[(int(s), int(e)) for s, e in encoded.offsets], intent=intent,
                          intent_score=score, intents=[(intent, score)] if intent else [],
                          tags=list(tags), slots=slots,
                          truncated=n > self.encoder.max_tokens, parse=decoded.parse)

    # ----------------------------------------------------------------- inference

    def predict(self, text: str) -> Prediction:
        """Intent and slots of one utterance.

        Args:
          text: the utterance, any script, any length (tokens beyond the model's `max_tokens`
            are not seen; `truncated` says so).

        Returns:
          A `Prediction`.

        Raises:
          TypeError: `text` is not a str.
          ValueError: `text` is empty or whitespace only.

        Example:
        >>> Predictor("model.tflite").predict("  wake me at 7").slots  # doctest: +SKIP
        [{'slot': 'time', 'text': '7', 'start': 13, 'end': 14, 'score': 0.97}]
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(EMPTY_MESSAGE)
        encoded = self.encoder.encode_text(text)
        if not encoded.tokens:  # cannot happen for non-blank text; kept as a guard
            raise ValueError(EMPTY_MESSAGE)
        if self.seq2seq:
            return self._predict_seq2seq(text, encoded)
        x = {"subwords": encoded.subwords, "codepoints": encoded.codepoints}.get(self.input_form)
        if x is None:
            x = self.encoder.encode_piece_ids(encoded.tokens)
        intent_logits, slot_logits = self._run(x)
        return self._decode(text, encoded, intent_logits, slot_logits)

    def logits_for_tokens(self, tokens: Sequence[str]) -> Tuple[np.ndarray, np.ndarray]:
        """Dequantized `(intent logits [num_intents], slot logits [max_tokens, num_slot_tags])`
        for already tokenized text (evaluation on a dataset's own tokens)."""
        if self.seq2seq:
            raise TypeError(f"{self.path} generates parses: use decode_token_lists or predict")
        return self._run(self.encoder.encode_form(self.input_form, tokens))

    def _run(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """One invoke on one encoded input; dequantized (intent logits, slot logits)."""
        with self._lock:
            it = self._interpreter
            it.set_tensor(self._input_index, np.ascontiguousarray(x[np.newaxis]))
            it.invoke()
            intent_logits = _dequantize(it.get_tensor(self._intent_out["index"]), self._intent_out)
            slot_logits = _dequantize(it.get_tensor(self._slots_out["index"]), self._slots_out)
        return intent_logits[0], slot_logits[0]

    def predict_batch(self, texts: Sequence[str]) -> List[Prediction]:
        """`predict` over several utterances (the model runs one at a time: batch size 1).

        Raises on the first bad utterance, as `predict` does.

        Example:
        >>> [p.intent for p in Predictor("model.tflite").predict_batch(["hi", "bye"])]  # doctest: +SKIP
        """
        if isinstance(texts, str):
            raise TypeError("predict_batch takes a list of texts (use predict for one)")
        return [self.predict(t) for t in texts]

    # ----------------------------------------------------------------- decoding

    def _decode(self, text: str, encoded, intent_logits: np.ndarray,
                slot_logits: np.ndarray) -> Prediction:
        intent, score, top = self._decode_intent(intent_logits)
        n = int(encoded.num_encoded)
        tags = ["O"] * len(encoded.tokens)
        tag_probs = [0.0] * len(encoded.tokens)
        if n:
            probs = _softmax(slot_logits[:n])  # padded positions are never looked at
            best = np.where(self._slot_allowed, probs, -1.0).argmax(axis=-1)
            for i, k in enumerate(best):
                tags[i] = self._slot_labels[k]
                tag_probs[i] = float(probs[i, k])
        slots = []
        for label, first, stop in bio_to_spans(tags):
            start, end = encoded.offsets[first][0], encoded.offsets[stop - 1][1]
            slots.append({"slot": label, "text": text[start:end], "start": int(start),
                          "end": int(end), "score": float(np.mean(tag_probs[first:stop]))})
        return Prediction(text=text, tokens=list(encoded.tokens),
                          offsets=[(int(s), int(e)) for s, e in encoded.offsets],
                          intent=intent, intent_score=score, intents=top, tags=tags,
                          slots=slots, truncated=len(encoded.tokens) > self.encoder.max_tokens)

    def _decode_intent(self, logits: np.ndarray) -> Tuple[str, float, List[Tuple[str, float]]]:
        labels, allowed = self._intent_labels, self._intent_allowed
        probs = _softmax(logits) if self.intent_mode == "joint" else _sigmoid(logits)
        masked = np.where(allowed, probs, -1.0)
        # Stable sort: ties keep the vocabulary order, so the result is deterministic.
        order = [int(i) for i in np.argsort(-masked, kind="stable") if allowed[i]]
        top = [(labels[i], float(probs[i])) for i in order[:TOP_K]]
        if self.intent_mode == "multi_label":
            chosen = [i for i in order if probs[i] >= self.intent_threshold]
            if chosen:
                label = normalize_intent("#".join(labels[i] for i in chosen))
                return label, float(min(probs[i] for i in chosen)), top
        best = order[0]
        return labels[best], float(probs[best]), top


def _shape(detail: dict) -> List[int]:
    return [int(d) for d in detail["shape"]]


def _dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Float values of an output tensor (int8/uint8 with a scale, or already float)."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return values.astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # The two-branch form never overflows exp().
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


__all__ = ["Predictor", "Prediction", "MetadataError", "EMPTY_MESSAGE"]

