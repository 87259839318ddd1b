"""Teacher outputs for distillation: the file format, its writer and the student's soft targets.

`prado-eval --teacher_out=FILE` writes it from any toolkit model (a .tflite or a model folder);
any other framework can write the same file. `prado-train --teacher=FILE` reads it.

Format (JSON Lines, UTF-8):

    {"format": "prado-teacher", "version": 1, "intent_mode": "joint",
     "intents": ["<unk>", "alarm:create", ...], "slot_tags": ["O", "<unk>", "B-time", ...]}
    {"language": "en", "utterance": "wake me up at 7", "tokens": ["wake", "me", ...],
     "intent_logits": [...one per intent...], "slot_logits": [[...one per slot tag...], ...]}
    ...

* Line 1 names the labels; every later line is one example, keyed by (`language`, `utterance`):
  the student's training examples are matched by that key, whatever order either file has.
* `intent_logits`: unnormalised scores, or log-probabilities (the same distribution). With
  `intent_mode` `multi_label`, one sigmoid logit per atomic intent.
* `slot_logits`: one row per token of `tokens`, which must be the dataset's own tokens (prado
  tokenization; `prado-data` prints them). Rows beyond the student's `max_seq_len` are ignored.
* Labels are matched by name: a teacher label the student does not know gets no mass; a student
  label the teacher does not know gets probability 0.

The student's targets are the teacher's distributions at temperature T: softmax(logits / T)
(sigmoid(logits / T) per intent in multi-label mode).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from prado_tiny.data.example import DataError, Example
from prado_tiny.data.vocab import LabelVocab, normalize_intent

FORMAT = "prado-teacher"
VERSION = 1


class TeacherError(DataError):
    """A teacher file that is malformed or does not fit the training data (file and line)."""


def write_teacher(path: str, examples: Sequence[Example], intent_logits, slot_logits,
                  vocab: LabelVocab, intent_mode: str = "joint") -> int:
    """Writes the teacher file of `examples` (logits as `prado-eval` computes them); returns the
    number of examples written. Slot rows cover the tokens the model saw."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    cfg = vocab.get_config()
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps({"format": FORMAT, "version": VERSION, "intent_mode": intent_mode,
                            "intents": cfg["intents"], "slot_tags": cfg["slot_tags"]},
                           ensure_ascii=False) + "\n")
        for ex, li, ls in zip(examples, intent_logits, slot_logits):
            f.write(json.dumps({
                "language": ex.language, "utterance": ex.utterance, "tokens": list(ex.tokens),
                "intent_logits": [round(float(x), 4) for x in li],
                "slot_logits": [[round(float(x), 4) for x in row] for row in ls]},
                ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return len(examples)


@dataclasses.dataclass
class TeacherOutputs:
    """A loaded teacher file.

    Attributes:
      path: the file.
      intent_mode: `joint` or `multi_label`.
      intents, slot_tags: label names, in the order of the logits.
      entries: (language, utterance) -> (line number, tokens, intent logits, slot logits).
    """

    path: str
    intent_mode: str
    intents: List[str]
    slot_tags: List[str]
    entries: Dict[Tuple[str, str], tuple]

    @classmethod
    def load(cls, path: str) -> "TeacherOutputs":
        if not os.path.isfile(path):
            raise TeacherError(path, 0, "teacher file not found")
        entries = {}
        with open(path, encoding="utf-8") as f:
            header = None
            for n, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    doc = json.loads(line)
                except json.JSONDecodeError as e:
                    raise TeacherError(path, n, f"not JSON: {e.msg}") from None
                if not isinstance(doc, dict):
                    raise TeacherError(path, n, "expected a JSON object")
                if header is None:
                    if doc.get("format") != FORMAT:
                        raise TeacherError(path, n, f"the first line must be the header "
                                                    f"{{\"format\": \"{FORMAT}\", ...}}")
                    for key in ("intents", "slot_tags"):
                        if not isinstance(doc.get(key), list) or not doc[key]:
                            raise TeacherError(path, n, f"header: '{key}' must be a non-empty list")
                    if doc.get("intent_mode", "joint") not in ("joint", "multi_label"):
                        raise TeacherError(path, n, f"header: unknown intent_mode "
                                                    f"{doc.get('intent_mode')!r}")
                    header = doc
                    continue
                entries[_key(doc, path, n)] = _entry(doc, header, path, n)
        if header is None:
            raise TeacherError(path, 0, "empty teacher file")
        return cls(path, header.get("intent_mode", "joint"), [str(x) for x in header["intents"]],
                   [str(x) for x in header["slot_tags"]], entries)


def _key(doc, path, n):
    for key in ("language", "utterance"):
        if not isinstance(doc.get(key), str):
            raise TeacherError(path, n, f"'{key}' must be a string")
    return doc["language"], doc["utterance"]


def _entry(doc, header, path, n):
    tokens = doc.get("tokens")
    if not isinstance(tokens, list):
        raise TeacherError(path, n, "'tokens' must be a list")
    try:
        li = np.asarray(doc.get("intent_logits"), np.float32)
        ls = np.asarray(doc.get("slot_logits"), np.float32)
    except (TypeError, ValueError):
        raise TeacherError(path, n, "logits must be lists of numbers") from None
    if li.shape != (len(header["intents"]),):
        raise TeacherError(path, n, f"'intent_logits' has {li.size} values; the header names "
                                    f"{len(header['intents'])} intents")
    if ls.size == 0:
        ls = ls.reshape(0, len(header["slot_tags"]))
    if ls.ndim != 2 or ls.shape[1] != len(header["slot_tags"]):
        raise TeacherError(path, n, f"'slot_logits' must be one row of {len(header['slot_tags'])} "
                                    f"values per token, got shape {list(ls.shape)}")
    if len(ls) > len(tokens):
        raise TeacherError(path, n, f"{len(ls)} slot rows for {len(tokens)} tokens")
    if not (np.isfinite(li).all() and np.isfinite(ls).all()):
        raise TeacherError(path, n, "logits must be finite")
    return n, [str(t) for t in tokens], li, ls


def _softmax(x, axis=-1):
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _index_map(names: Sequence[str], vocab_names: Sequence[str], normalize=lambda s: s):
    """-> (teacher columns, student columns) of the labels both know."""
    where = {normalize(v): i for i, v in enumerate(vocab_names)}
    pairs = [(j, where[normalize(t)]) for j, t in enumerate(names) if normalize(t) in where]
    return np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64)


@dataclasses.dataclass
class SoftTargets:
    """The teacher's distributions, aligned with a TokenFeatureSet.

    Attributes:
      intents: float32 `[N, num_intents]`: softmax(logits / T) (or per-intent sigmoids).
      slots: float16 `[total_tokens, num_slot_tags]`: softmax(logits / T) per token.
      weight: float32 `[N]`: 1 where the teacher has the example, else 0 (gold loss only).
      missing: examples without a teacher line.
    """

    intents: np.ndarray
    slots: np.ndarray
    weight: np.ndarray
    missing: int


def soft_targets(teacher: TeacherOutputs, examples: Sequence[Example], lengths: np.ndarray,
                 vocab: LabelVocab, temperature: float, intent_mode: str = "joint") -> SoftTargets:
    """The teacher's targets for `examples` (the student's label ids; `lengths` its token counts
    per example, as `TokenFeatureSet.lengths`)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if teacher.intent_mode != intent_mode:
        raise TeacherError(teacher.path, 1, f"the teacher's intent_mode is {teacher.intent_mode!r}, "
                                            f"the student's {intent_mode!r}")
    cfg = vocab.get_config()
    ti, si = _index_map(teacher.intents, cfg["intents"], normalize_intent)
    tt, st = _index_map(teacher.slot_tags, cfg["slot_tags"])
    if len(ti) == 0 or len(tt) == 0:
        raise TeacherError(teacher.path, 1, "the teacher's labels share no name with the "
                                            "student's label vocabulary")
    n, total = len(examples), int(np.sum(lengths))
    intents = np.zeros((n, vocab.num_intents), np.float32)
    slots = np.zeros((total, vocab.num_slot_tags), np.float16)
    slots[:, 0] = 1.0  # `O` for examples without a teacher (weight 0 anyway)
    weight = np.zeros(n, np.float32)
    missing, start = 0, 0
    for i, ex in enumerate(examples):
        length = int(lengths[i])
        entry = teacher.entries.get((ex.language, ex.utterance))
        if entry is None:
            missing += 1
            start += length
            continue
        line, tokens, li, ls = entry
        if tokens[:length] != list(ex.tokens[:length]):
            raise TeacherError(teacher.path, line, f"tokens {tokens[:length]} differ from the "
                                                   f"dataset's {list(ex.tokens[:length])} ({ex.source})")
        if len(ls) < length:
            raise TeacherError(teacher.path, line, f"{len(ls)} slot rows; the student reads "
                                                   f"{length} tokens of this example")
        if intent_mode == "multi_label":
            intents[i, si] = 1.0 / (1.0 + np.exp(-li[ti] / temperature))
        else:
            intents[i, si] = _softmax(li[ti] / temperature)
        slots[start:start + length] = 0.0
        slots[start:start + length, st] = _softmax(ls[:length][:, tt] / temperature)
        weight[i] = 1.0
        start += length
    return SoftTargets(intents, slots, weight, missing)


def attach(feature_set, targets: Optional[SoftTargets]):
    """Adds the soft targets to a TokenFeatureSet's batches (labels `teacher_intent`,
    `teacher_slots`, `teacher_weight`)."""
    feature_set.teacher = targets
    return feature_set
