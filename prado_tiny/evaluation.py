"""Predictions and scores of a joint intent/slot model, from a Keras model or a .tflite file.

Decoding rules (the same for Keras and TFLite, so the parity report compares like with like):

* intent, joint mode: the arg-max class, never `<unk>`;
* intent, multi-label mode: every atomic intent with sigmoid >= threshold, joined with `#` in
  sorted order (`normalize_intent`); the arg-max one if none passes;
* slots: the arg-max tag of each real token, never `<unk>`; tokens beyond max_seq_len get `O`.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from prado_tiny.data.example import Example
from prado_tiny.data.vocab import LabelVocab, normalize_intent
from prado_tiny.metrics import NLUMetrics

UNK_INTENT = 0
UNK_SLOT = 1


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def decode_intent(logits: np.ndarray, vocab: LabelVocab, intent_mode: str = "joint",
                  threshold: float = 0.5) -> Tuple[str, float]:
    """-> (label, score) for one example's intent logits."""
    logits = np.asarray(logits, np.float64).copy()
    logits[UNK_INTENT] = -np.inf
    if intent_mode == "multi_label":
        p = 1.0 / (1.0 + np.exp(-logits))
        chosen = [i for i in np.flatnonzero(p >= threshold)]
        if not chosen:
            chosen = [int(np.argmax(p))]
        label = normalize_intent("#".join(vocab.decode_intent(int(i)) for i in chosen))
        return label, float(np.prod(p[chosen]))
    p = softmax(logits)
    i = int(np.argmax(p))
    return vocab.decode_intent(i), float(p[i])


def decode_slots(logits: np.ndarray, length: int, num_tokens: int, vocab: LabelVocab
                 ) -> Tuple[List[str], List[float]]:
    """-> (BIO tags over all `num_tokens` tokens, their probabilities); `logits` [>= length, S]."""
    logits = np.asarray(logits[:length], np.float64).copy()
    if len(logits):
        logits[:, UNK_SLOT] = -np.inf
    p = softmax(logits) if len(logits) else np.zeros((0, vocab.num_slot_tags))
    ids = p.argmax(-1) if len(p) else np.zeros(0, np.int64)
    tags = vocab.decode_slots(int(i) for i in ids) + ["O"] * max(num_tokens - length, 0)
    scores = [float(p[t, i]) for t, i in enumerate(ids)] + [1.0] * max(num_tokens - length, 0)
    return tags, scores


def keras_logits(model, feature_set, batch_size: int = 512) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Runs `model` over a TokenFeatureSet: per example intent logits and slot logits [len, S]."""
    import tensorflow as tf

    n = len(feature_set)
    first, _ = feature_set.batch([0])
    # One trace for every batch length: a trace per length cost more than the dev pass itself.
    signature = [{k: tf.TensorSpec((None, None) + v.shape[2:], tf.as_dtype(v.dtype))
                  for k, v in first.items()}]

    @tf.function(input_signature=signature)
    def run(features):
        return model(features, training=False)

    intents, slots = [], []
    for lo in range(0, n, batch_size):
        idx = np.arange(lo, min(lo + batch_size, n))
        features, _ = feature_set.batch(idx)
        out = run(features)
        li, ls = out["intent"].numpy(), out["slots"].numpy()
        for j, i in enumerate(idx):
            intents.append(li[j])
            slots.append(ls[j, :feature_set.lengths[i]])
    return intents, slots


def predictions(examples: Sequence[Example], intent_logits, slot_logits, vocab: LabelVocab,
                intent_mode: str = "joint", threshold: float = 0.5) -> List[Dict[str, Any]]:
    """One prediction record per example (the `--predictions_out` lines)."""
    out = []
    for ex, li, ls in zip(examples, intent_logits, slot_logits):
        intent, score = decode_intent(li, vocab, intent_mode, threshold)
        tags, _ = decode_slots(ls, len(ls), len(ex.tokens), vocab)
        out.append({"id": ex.id, "language": ex.language, "utterance": ex.utterance,
                    "tokens": list(ex.tokens), "intent": intent, "intent_score": round(score, 6),
                    "slots": tags, "gold_intent": ex.intent, "gold_slots": list(ex.slots),
                    "source": ex.source})
    return out


def score(examples: Sequence[Example], preds: Sequence[Dict[str, Any]],
          vocab: Optional[LabelVocab] = None) -> Dict[str, Any]:
    """`NLUMetrics(...).result()` of prediction records against their examples."""
    m = NLUMetrics(vocab)
    for ex, p in zip(examples, preds):
        m.update(ex, p["intent"], p["slots"], language=ex.language)
    return m.result()


def headline(result: Dict[str, Any]) -> Dict[str, Any]:
    """The early-stopping score and the main averages of a `result()`."""
    avg = result["average"]
    return {"score": avg["exact_match"] or 0.0, "exact_match": avg["exact_match"],
            "intent_accuracy": avg["intent_accuracy"], "slot_f1": avg["slot_f1"],
            "slot_tag_accuracy": avg["slot_tag_accuracy"]}


def dev_evaluator(vocab: LabelVocab, intent_mode: str = "joint"):
    """The Trainer's `evaluate_fn`: Keras model + TokenFeatureSet -> headline scores."""
    def evaluate(model, feature_set):
        li, ls = keras_logits(model, feature_set)
        preds = predictions(feature_set.examples, li, ls, vocab, intent_mode)
        return headline(score(feature_set.examples, preds, vocab))
    return evaluate


def write_predictions(path: str, preds: Iterable[Dict[str, Any]]) -> int:
    """Writes one JSON line per prediction, in input order; returns the count."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    n = 0
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for p in preds:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
            n += 1
    os.replace(tmp, path)
    return n


# -- seq2seq (pQRNN-MAtt): parses generated as ontology + pointer ids --------------------------
#
# The model's output is scored two ways: tree exact match of the decoded parse, and the flat
# scores of the frame derived from it (root intent; each top-level slot spans its pointers'
# tokens, `flat_from_ids`, or for a repaired sequence its text placed as the MTOP reader places
# gold slots, `flat_from_parse`), so that it compares with the flat models on the same examples.

def flat_from_parse(parse: Optional[str], example: Example) -> Tuple[str, List[str]]:
    """`(intent, BIO tags)` of a predicted parse on `example`'s tokens.

    The intent is the root's label and the tags place the root's slots (`parse.flat_frame`: a slot
    holding a nested intent has the text of every word below it) with `parse.flat_to_bio`, the
    alignment the MTOP reader uses for the gold tags. A slot boundary inside one of the example's
    tokens splits it: the tag list is then longer than the tokens and scored as a length mismatch
    (never an exact match). No parse (or a malformed one): intent `""` and every tag `O`."""
    from prado_tiny.data.parse import ParseError, flat_frame, flat_to_bio
    if parse is None:
        return "", ["O"] * len(example.tokens)
    try:
        intent, slots = flat_frame(parse)
    except ParseError:
        return "", ["O"] * len(example.tokens)
    tokens = [(t, int(s), int(e)) for t, (s, e) in zip(example.tokens, example.offsets)]
    _, tags, _ = flat_to_bio(example.utterance, slots, tokens=tokens)
    return intent, list(tags)


def flat_from_ids(vocab, ids: Sequence[int], num_tokens: int) -> Tuple[str, List[str]]:
    """`(intent, BIO tags over num_tokens tokens)` of a well-formed id sequence (constrained
    decoding; check `vocab.decode(ids, tokens).repaired` is False first).

    The intent is the root's label; each top-level slot tags the tokens from its first to its
    last pointer (pointers of nested intents included), as MTOP's flat parse spans a slot that
    holds an intent: words the decoupled parse leaves out (`'s` of `Xander Brown 's mom`) are
    inside the span. Pointers beyond `num_tokens` are ignored."""
    intent, slots, depth, current = "", [], 0, None
    for i in ids:
        i = int(i)
        if i == vocab.bos_id:
            continue
        if i == vocab.eos_id:
            break
        if vocab.is_pointer(i):
            if current is not None and vocab.position(i) < num_tokens:
                current[1].append(vocab.position(i))
        elif i == vocab.close_id:
            if depth == 2 and current is not None:
                slots.append(current)
                current = None
            depth -= 1
        elif vocab.is_opener(i):
            depth += 1
            label = "<unk>" if i == vocab.unk_id else vocab.token(i).partition(":")[2]
            if depth == 1:
                intent = label
            elif depth == 2:
                current = (label, [])
    tags = ["O"] * num_tokens
    for label, positions in slots:
        if positions:
            lo, hi = min(positions), max(positions)
            tags[lo] = f"B-{label}"
            for k in range(lo + 1, hi + 1):
                tags[k] = f"I-{label}"
    return intent, tags


def seq2seq_predictions(examples: Sequence[Example], id_lists: Sequence[Sequence[int]], vocab
                        ) -> List[Dict[str, Any]]:
    """One prediction record per example (the `--predictions_out` lines of a seq2seq model):
    the decoded `parse` (None when nothing could be made of the ids), whether `decode` had to
    repair it, the flat `intent` and `slots` derived from it, and the gold labels."""
    out = []
    for ex, ids in zip(examples, id_lists):
        decoded = vocab.decode(ids, ex.tokens)
        if decoded.parse is not None and not decoded.repaired:
            intent, tags = flat_from_ids(vocab, ids, len(ex.tokens))
        else:  # the rebuilt tree is not what the ids say: place its slot text instead
            intent, tags = flat_from_parse(decoded.parse, ex)
        out.append({"id": ex.id, "language": ex.language, "utterance": ex.utterance,
                    "tokens": list(ex.tokens), "parse": decoded.parse, "repaired": decoded.repaired,
                    "intent": intent, "slots": tags, "gold_parse": ex.parse,
                    "gold_intent": ex.intent, "gold_slots": list(ex.slots), "source": ex.source})
    return out


def score_seq2seq(examples: Sequence[Example], preds: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """`NLUMetrics().result()` of seq2seq prediction records: tree exact match (a missing parse
    counts wrong) and the flat scores of the derived frames."""
    m = NLUMetrics()
    for ex, p in zip(examples, preds):
        m.update(ex, p["intent"], p["slots"], pred_parse=p["parse"] if p["parse"] is not None else "",
                 language=ex.language)
    return m.result()


def seq2seq_headline(result: Dict[str, Any]) -> Dict[str, Any]:
    """The early-stopping score (tree exact match averaged over languages) and the main
    averages, the flat ones derived from the predicted trees."""
    avg = result["average"]
    return {"score": avg["tree_exact_match"] or 0.0, "score_name": "tree exact match",
            "tree_exact_match": avg["tree_exact_match"], "exact_match": avg["exact_match"],
            "intent_accuracy": avg["intent_accuracy"], "slot_f1": avg["slot_f1"],
            "slot_tag_accuracy": avg["slot_tag_accuracy"]}


def quantize_key(model) -> tuple:
    """Which of `model`'s layers fake-quantize now (a traced step must follow a change)."""
    return tuple(bool(layer.quantize) for layer in model.submodules
                 if hasattr(layer, "quantize") and layer is not model)


def keras_decode(model, feature_set, vocab, beam_width: int = 1, length_penalty_alpha: float = 0.6,
                 constrain: bool = True, chunk: int = 256, stepper=None) -> List[List[int]]:
    """Output ids per example of a `Seq2SeqFeatureSet`, decoded by the Keras model: greedy
    (`beam_width` 1) or beam search, constrained to well-formed trees by default, `chunk`
    examples at a time (similar source lengths together: less padding)."""
    from prado_tiny.models.pqrnn_matt import KerasStepper
    from prado_tiny.seq2seq_decoding import beam_search, greedy_search
    stepper = stepper or KerasStepper(model)
    max_len = model.config.max_target_len
    order = np.argsort(feature_set.lengths, kind="stable")
    out: List[Optional[List[int]]] = [None] * len(feature_set)
    for lo in range(0, len(order), chunk):
        idx = order[lo:lo + chunk]
        features = feature_set.encoder_features(idx)
        if beam_width <= 1:
            ids = greedy_search(stepper, features, max_len, vocab, constrain)
        else:
            ids = beam_search(stepper, features, beam_width, length_penalty_alpha, max_len, vocab,
                              constrain)
        for i, row in zip(idx, ids):
            out[int(i)] = [int(x) for x in row]
    return out


def seq2seq_dev_evaluator(vocab, chunk: int = 256):
    """The Trainer's `evaluate_fn` for a seq2seq model: constrained greedy decoding of the
    development set -> tree exact match (the early-stopping score) and the derived flat scores.
    The compiled step is traced again when the model's quantization changes (QAT)."""
    from prado_tiny.models.pqrnn_matt import KerasStepper
    cache: Dict[str, Any] = {}

    def evaluate(model, feature_set):
        key = (id(model), quantize_key(model))
        if cache.get("key") != key:
            cache.update(key=key, stepper=KerasStepper(model))
        ids = keras_decode(model, feature_set, vocab, beam_width=1, chunk=chunk,
                           stepper=cache["stepper"])
        preds = seq2seq_predictions(feature_set.examples, ids, vocab)
        return seq2seq_headline(score_seq2seq(feature_set.examples, preds))
    return evaluate
