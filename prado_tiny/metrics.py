"""NLU metrics: intent accuracy, slot chunk F1, exact match and tree exact match, per language.

Definitions (one place, so every tool reports the same numbers):

* **Intent accuracy**: the predicted intent equals the gold one. A multi-intent (`a#b`) is
  compared as the *set* of its `#`-parts (`normalize_intent`): `b#a` is right for gold `a#b`; `a`
  alone is wrong for `a#b` (no partial credit).
* **Slot precision / recall / F1**: micro-averaged over exact chunk matches, a chunk being
  `(type, first_token, last_token + 1)` as cut by `prado_tiny.data.align.bio_to_spans`, which
  follows conlleval: a chunk starts at `B-X`, at `I-X` after `O`, and at `I-X` after a tag of
  another type. Precision is 0 with no predicted chunks and recall 0 with no gold chunks
  (conlleval's convention); when there are neither gold nor predicted chunks the three scores are
  undefined and reported as None.
* **Exact match**: the intent is right and the set of predicted chunks equals the gold set (so
  `O I-X` equals `O B-X`), and the prediction has one tag per token.
* **Slot tag accuracy** (`tag acc`): the share of tokens whose gold tag is not `O` that get
  exactly their gold tag (`B-X`/`I-X` included). This is the MTOP figure of the pNLP-Mixer paper
  as the public reproduction of it computes it (per-token accuracy over tokens with a non-`O`
  gold tag); BUILD.md says how that was established. A token with no predicted tag is wrong.
* **Tree exact match**: the canonical strings (`prado_tiny.data.parse.canonical`) of the gold and
  predicted decoupled parses are equal. Scored for examples whose gold has a parse and whose
  prediction gives one (`pred_parse=None` means "this model predicts no parse"; pass a string,
  even an empty one, to have it scored). A malformed predicted parse is wrong; a malformed gold
  parse raises ParseError naming the example, since dropping it would bias the score.

Robustness of predictions (a bad prediction is wrong, never a crash):

* Any predicted label is accepted; one never seen in training simply matches nothing. With a
  `LabelVocab`, such labels are also counted (`unknown_intents`, `unknown_slot_tags`).
* A predicted tag that is not `O`/`B-X`/`I-X` (`<unk>`, a bare word) is read by the chunker as a
  chunk of its own type: it matches no gold chunk, so it costs precision, and the gold chunk it
  covers costs recall. Non-string tags become `<invalid>` and behave the same way.
* **Wrong-length tag lists** are neither padded nor truncated: chunks are compared by token
  position, so a predicted chunk past the end of the sentence is a false positive and tokens with
  no predicted tag predict no chunk (false negatives, as if `O`). Such predictions are counted
  in `length_mismatch` and are never an exact match. A string is split on whitespace; None is an
  empty list.

Aggregation: every score is given per language, for `overall` (micro: all examples pooled, slot
counts summed) and for `average` (the unweighted mean of the per-language scores, as papers
report for MTOP; languages where a score is undefined are left out of its mean).
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Dict, Iterable, List, Mapping, Optional, Set, Tuple

from prado_tiny.data.align import bio_to_spans
from prado_tiny.data.parse import ParseError, canonical
from prado_tiny.data.vocab import normalize_intent

Chunk = Tuple[str, int, int]

INVALID_TAG = "<invalid>"
UNKNOWN_LANGUAGE = "und"  # ISO 639-2 "undetermined", for gold without a language

# The scores of one language or aggregate, in table order.
SCORES = ("intent_accuracy", "slot_precision", "slot_recall", "slot_f1", "slot_tag_accuracy",
          "exact_match", "tree_exact_match")


# -- single-example rules ---------------------------------------------------------------------

def _as_text(x: Any) -> Optional[str]:
    """A predicted label as text: str as is, bytes (TF string tensors) decoded, else None."""
    if isinstance(x, str):
        return x
    if isinstance(x, (bytes, bytearray)):
        return bytes(x).decode("utf-8", errors="replace")
    return None


def as_tags(tags: Any) -> List[str]:
    """A tag sequence as a list of strings, whatever the caller passed (see module docstring)."""
    if tags is None:
        return []
    text = _as_text(tags)
    if text is not None:
        return text.split()
    try:
        items = list(tags)
    except TypeError:  # a scalar: no tags at all
        return []
    out = []
    for t in items:
        s = _as_text(t)
        out.append(INVALID_TAG if s is None else s)
    return out


def intent_correct(gold: str, pred: Any) -> bool:
    """Whether `pred` is the gold intent, multi-intents compared as sets of intents.

    Example:

    >>> intent_correct("atis_flight#atis_airfare", "atis_airfare#atis_flight")
    True
    >>> intent_correct("atis_flight#atis_airfare", "atis_flight")
    False
    """
    text = _as_text(pred)
    return text is not None and normalize_intent(text) == normalize_intent(gold)


def slot_chunks(tags: Any) -> Set[Chunk]:
    """The set of `(type, start, end)` chunks of a tag sequence (conlleval rules, end exclusive).

    Example:

    >>> sorted(slot_chunks(["O", "I-time", "I-date", "B-date"]))
    [('date', 2, 3), ('date', 3, 4), ('time', 1, 2)]
    """
    return set(bio_to_spans(as_tags(tags)))


def slot_counts(gold_tags: Any, pred_tags: Any) -> Tuple[int, int, int]:
    """`(true positives, false positives, false negatives)` of one sentence's chunks.

    Example:

    >>> slot_counts(["B-a", "I-a", "O"], ["B-a", "O", "O"])  # span end differs: no match
    (0, 1, 1)
    """
    gold, pred = slot_chunks(gold_tags), slot_chunks(pred_tags)
    tp = len(gold & pred)
    return tp, len(pred) - tp, len(gold) - tp


def prf(tp: int, fp: int, fn: int) -> Tuple[Optional[float], Optional[float], Optional[float]]:
    """Precision, recall and F1 from counts; all None when there is nothing to score.

    Example:

    >>> prf(2, 1, 3)  # P = 2/3, R = 2/5, F1 = 2PR/(P+R) = 1/2
    (0.6666666666666666, 0.4, 0.5)
    """
    if tp + fp + fn == 0:
        return None, None, None
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def tree_match(gold_parse: str, pred_parse: Any) -> bool:
    """Whether two decoupled parses are the same tree (canonical strings equal).

    A malformed or non-string `pred_parse` gives False; a malformed `gold_parse` raises
    ParseError.

    Example:

    >>> tree_match("[IN:A [SL:B x ] ]", "[IN:A  [SL:B x ]]")
    True
    >>> tree_match("[IN:A [SL:B x ] ]", "[IN:A [SL:B x ]")  # unclosed
    False
    """
    gold = canonical(gold_parse)
    pred = _pred_canonical(pred_parse)
    return pred is not None and pred == gold


def _pred_canonical(pred_parse: Any) -> Optional[str]:
    """The canonical string of a predicted parse, or None if it is malformed or not text."""
    text = _as_text(pred_parse)
    if text is None:
        return None
    try:
        return canonical(text)
    except (ParseError, ValueError, TypeError):
        return None


# -- accumulation -----------------------------------------------------------------------------

@dataclasses.dataclass
class _Counts:
    examples: int = 0
    intents_correct: int = 0
    slot_tp: int = 0
    slot_fp: int = 0
    slot_fn: int = 0
    tags_correct: int = 0
    tags_scored: int = 0
    exact_matches: int = 0
    parses: int = 0
    tree_correct: int = 0
    length_mismatch: int = 0
    malformed_parses: int = 0
    unknown_intents: int = 0
    unknown_slot_tags: int = 0

    def add(self, other: "_Counts") -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def scores(self) -> Dict[str, Any]:
        n = self.examples
        p, r, f = prf(self.slot_tp, self.slot_fp, self.slot_fn)
        out: Dict[str, Any] = {
            "intent_accuracy": self.intents_correct / n if n else None,
            "slot_precision": p,
            "slot_recall": r,
            "slot_f1": f,
            "slot_tag_accuracy": self.tags_correct / self.tags_scored if self.tags_scored else None,
            "exact_match": self.exact_matches / n if n else None,
            "tree_exact_match": self.tree_correct / self.parses if self.parses else None,
        }
        out.update(dataclasses.asdict(self))  # raw counts; names differ from the scores'
        return out


def _gold_fields(gold: Any) -> Tuple[str, List[str], Optional[str], Optional[str], str]:
    """`(intent, slots, parse, language, name)` of an Example, a mapping or a tuple."""
    if isinstance(gold, Mapping):
        get = gold.get
        return (gold["intent"], as_tags(gold.get("slots")), get("parse"), get("language"),
                str(get("source") or get("id") or ""))
    if isinstance(gold, (tuple, list)):
        intent, slots, parse = (list(gold) + [None])[:3]
        return intent, as_tags(slots), parse, None, ""
    return (gold.intent, as_tags(gold.slots), getattr(gold, "parse", None),
            getattr(gold, "language", None),
            str(getattr(gold, "source", "") or getattr(gold, "id", "") or ""))


class NLUMetrics:
    """Accumulates intent, slot, exact-match and tree exact-match scores, per language.

    The definitions are in this module's docstring; `result()` gives per-language, micro
    (`overall`) and unweighted per-language mean (`average`) scores as fractions in [0, 1].

    Args:
      vocab: optional `LabelVocab` of the model; when given, predicted labels outside it (or its
        `<unk>` entries) are counted in `unknown_intents` / `unknown_slot_tags`. Scores do not
        depend on it.

    Example:

    >>> m = NLUMetrics()
    >>> m.update({"intent": "alarm", "slots": ["O", "B-time"], "language": "en"},
    ...          pred_intent="alarm", pred_slots=["O", "I-time"])["exact_match"]
    True
    >>> _ = m.update(("weather", ["B-loc", "I-loc"]), "weather", ["B-loc", "O"], language="de")
    >>> r = m.result()
    >>> r["overall"]["slot_f1"], r["languages"]["de"]["slot_f1"], r["average"]["slot_f1"]
    (0.5, 0.0, 0.5)
    >>> print(format_table(r))  # doctest: +SKIP
    """

    def __init__(self, vocab: Any = None):
        self.vocab = vocab
        self.reset()

    def reset(self) -> None:
        self._counts: Dict[str, _Counts] = collections.defaultdict(_Counts)

    def update(self, gold: Any, pred_intent: Any, pred_slots: Any, pred_parse: Any = None,
               language: Optional[str] = None) -> Dict[str, Any]:
        """Scores one prediction against its gold example.

        Args:
          gold: an `Example`, a mapping with `intent`, `slots` and optionally `parse`, `language`,
            `id`/`source`, or a tuple `(intent, slots[, parse])`.
          pred_intent: the predicted intent label (`a#b` for a multi-intent).
          pred_slots: the predicted tags, one per gold token.
          pred_parse: the predicted decoupled parse, or None if the model predicts none.
          language: overrides the gold's language; without either the language is `und`.

        Returns:
          This example's outcome: `intent_correct`, `slot_tp`, `slot_fp`, `slot_fn`,
          `exact_match`, `tree_match` (None when not scored) and `length_mismatch`.

        Raises:
          ParseError: the *gold* parse is malformed (the message names the example).
        """
        g_intent, g_slots, g_parse, g_lang, name = _gold_fields(gold)
        lang = str(language or g_lang or UNKNOWN_LANGUAGE)
        p_slots = as_tags(pred_slots)

        c = _Counts(examples=1)
        ok_intent = intent_correct(g_intent, pred_intent)
        gold_chunks, pred_chunks = set(bio_to_spans(g_slots)), set(bio_to_spans(p_slots))
        tp = len(gold_chunks & pred_chunks)
        c.slot_tp, c.slot_fp, c.slot_fn = tp, len(pred_chunks) - tp, len(gold_chunks) - tp
        scored = [i for i, t in enumerate(g_slots) if t != "O"]
        c.tags_scored = len(scored)
        c.tags_correct = sum(i < len(p_slots) and p_slots[i] == g_slots[i] for i in scored)
        mismatch = len(p_slots) != len(g_slots)
        exact = ok_intent and gold_chunks == pred_chunks and not mismatch
        c.intents_correct, c.exact_matches = int(ok_intent), int(exact)
        c.length_mismatch = int(mismatch)

        tree: Optional[bool] = None
        if g_parse is not None and pred_parse is not None:
            try:
                gold_canon = canonical(g_parse)
            except ParseError as e:
                raise ParseError(f"gold parse of {name or 'an example'} is malformed: {e.message}"
                                 ) from None
            pred_canon = _pred_canonical(pred_parse)
            tree = pred_canon == gold_canon
            c.parses, c.tree_correct = 1, int(tree)
            c.malformed_parses = int(pred_canon is None)

        if self.vocab is not None:
            c.unknown_intents = int(not self._known_intent(pred_intent))
            c.unknown_slot_tags = sum(not self._known_tag(t) for t in p_slots)

        self._counts[lang].add(c)
        return {"intent_correct": ok_intent, "slot_tp": c.slot_tp, "slot_fp": c.slot_fp,
                "slot_fn": c.slot_fn, "exact_match": exact, "tree_match": tree,
                "length_mismatch": mismatch}

    def _known_intent(self, pred: Any) -> bool:
        text = _as_text(pred)
        intents = self.vocab.intents
        return text is not None and normalize_intent(text) in intents and \
            normalize_intent(text) != intents.unk

    def _known_tag(self, tag: str) -> bool:
        slots = self.vocab.slots
        return tag in slots and tag != slots.unk

    def result(self) -> Dict[str, Any]:
        """The scores so far.

        Returns:
          `{"languages": {lang: scores}, "overall": scores, "average": mean scores}`. Each
          `scores` dict has the seven `SCORES` (fractions, None when undefined) and the raw counts
          (`examples`, `intents_correct`, `slot_tp`, `slot_fp`, `slot_fn`, `tags_correct`,
          `tags_scored`, `exact_matches`,
          `parses`, `tree_correct`, `length_mismatch`, `malformed_parses`, `unknown_intents`,
          `unknown_slot_tags`);
          `average` has the seven scores and `languages`, the number of languages averaged.
        """
        languages = {lang: self._counts[lang].scores() for lang in sorted(self._counts)}
        total = _Counts()
        for counts in self._counts.values():
            total.add(counts)
        average: Dict[str, Any] = {"languages": len(languages)}
        for key in SCORES:
            values = [s[key] for s in languages.values() if s[key] is not None]
            average[key] = sum(values) / len(values) if values else None
        return {"languages": languages, "overall": total.scores(), "average": average}


def evaluate(golds: Iterable[Any], pred_intents: Iterable[Any], pred_slots: Iterable[Any],
             pred_parses: Optional[Iterable[Any]] = None, vocab: Any = None) -> Dict[str, Any]:
    """Scores parallel lists of gold examples and predictions; `NLUMetrics(...).result()`.

    Raises ValueError if the lists differ in length (a misaligned prediction file).
    """
    golds, pred_intents, pred_slots = list(golds), list(pred_intents), list(pred_slots)
    parses = [None] * len(golds) if pred_parses is None else list(pred_parses)
    if not len(golds) == len(pred_intents) == len(pred_slots) == len(parses):
        raise ValueError(f"{len(golds)} gold examples but {len(pred_intents)} intents, "
                         f"{len(pred_slots)} slot sequences and {len(parses)} parses predicted")
    metrics = NLUMetrics(vocab=vocab)
    for g, i, s, p in zip(golds, pred_intents, pred_slots, parses):
        metrics.update(g, i, s, p)
    return metrics.result()


def format_table(result: Mapping[str, Any], digits: int = 2) -> str:
    """The scores of `result()` as a plain-text table (percentages), one row per language.

    Rows: each language, then `overall` (micro) and `average` (unweighted mean over languages).
    Undefined scores print as `-`. Lines after the table note wrong-length predictions, malformed
    parses and unknown labels where there were any. Returns the text; print it.

    Example output:

        language  examples  intent  slot P  slot R  slot F1  tag acc  exact  tree EM
        de               2  100.00   50.00  100.00    66.67   100.00  50.00        -
        en               1    0.00  100.00  100.00   100.00   100.00   0.00        -
        overall          3   66.67   66.67  100.00    80.00   100.00  33.33        -
        average          -   50.00   75.00  100.00    83.33   100.00  25.00        -
    """
    header = ("language", "examples", "intent", "slot P", "slot R", "slot F1", "tag acc", "exact",
              "tree EM")

    def pct(x: Optional[float]) -> str:
        return "-" if x is None else f"{100 * x:.{digits}f}"

    rows = []
    langs = result.get("languages", {})
    for name, s in list(langs.items()) + [("overall", result["overall"])]:
        rows.append([name, str(s["examples"])] + [pct(s[k]) for k in SCORES])
    avg = result.get("average")
    if avg is not None:
        # Its examples column stays empty: every language weighs the same, whatever its size.
        rows.append(["average", "-"] + [pct(avg[k]) for k in SCORES])
    widths = [max(len(r[i]) for r in rows + [list(header)]) for i in range(len(header))]
    lines = []
    for r in [list(header)] + rows:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())

    notes = (("length_mismatch", "predictions with the wrong number of tags"),
             ("malformed_parses", "malformed predicted parses"),
             ("unknown_intents", "predicted intents outside the vocabulary"),
             ("unknown_slot_tags", "predicted slot tags outside the vocabulary"))
    for key, what in notes:
        per = [f"{lang} {s[key]}" for lang, s in langs.items() if s.get(key)]
        if per:
            lines.append(f"note: {what}: {result['overall'][key]} ({', '.join(per)})")
    return "\n".join(lines)
