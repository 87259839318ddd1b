"""Label vocabularies: intent labels and slot tags to ids and back, saved as JSON with the model.

A `LabelVocab` is built once from the training split and travels with the model
(`label_vocab.json` in the model folder), so that ids mean the same thing at training, evaluation
and export time. The order is deterministic: reserved entries first, then the labels sorted by
code point, so the same training data always gives the same ids.

Reserved entries:

* intents: `<unk>` is id 0.
* slot tags: `O` is id 0, `<unk>` is id 1.

A label not in the vocabulary encodes to the unknown id and is counted in `unknown` (a test split
with an intent never seen in training shows up there instead of crashing a run).
"""
from __future__ import annotations

import collections
import json
import os
import pathlib
from typing import Any, Dict, Iterable, List, Mapping, Sequence, Union

FILENAME = "label_vocab.json"
FORMAT = "prado_tiny.LabelVocab"
VERSION = 1

UNK = "<unk>"
OUTSIDE = "O"

PathLike = Union[str, "os.PathLike[str]"]


class VocabError(ValueError):
    """A vocabulary file that is missing, unreadable or malformed; the message names the path."""


def normalize_intent(label: str) -> str:
    """The canonical spelling of a (multi-)intent label: its `#`-parts, unique and sorted.

    `b#a`, `a#b` and `a#b#a` all become `a#b`. The metrics compare multi-intents as sets of
    intents, and this is that same rule as a string, so the vocabulary never gives one intent
    set two ids.

    Example:

    >>> normalize_intent("atis_flight#atis_airfare")
    'atis_airfare#atis_flight'
    """
    return "#".join(sorted(set(str(label).split("#"))))


class Vocabulary:
    """One label set: reserved entries first, then the labels sorted; label <-> id.

    Args:
      labels: the labels (any order, duplicates allowed); reserved ones among them are ignored.
      reserved: the entries that come first, in this order.
      unk: the entry unknown labels encode to; must be one of `reserved`.

    Example:

    >>> v = Vocabulary(["b", "a", "b"], reserved=("<unk>",), unk="<unk>")
    >>> v.labels
    ['<unk>', 'a', 'b']
    >>> v.encode("b"), v.encode("zzz"), v.decode(1)
    (2, 0, 'a')
    >>> v.unknown
    Counter({'zzz': 1})
    """

    def __init__(self, labels: Iterable[str], reserved: Sequence[str], unk: str):
        if unk not in reserved:
            raise ValueError(f"unk entry {unk!r} must be one of the reserved entries {reserved}")
        labels = [str(x) for x in labels]
        rest = sorted(set(labels) - set(reserved))
        self.reserved = tuple(reserved)
        self.labels: List[str] = list(reserved) + rest
        self.unk = unk
        self.unk_id = self.labels.index(unk)
        self._index: Dict[str, int] = {label: i for i, label in enumerate(self.labels)}
        # Labels that were encoded as unknown, with how often; reset with `unknown.clear()`.
        self.unknown: collections.Counter = collections.Counter()

    def __len__(self) -> int:
        return len(self.labels)

    def __contains__(self, label: object) -> bool:
        return label in self._index

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Vocabulary) and self.labels == other.labels
                and self.unk == other.unk and self.reserved == other.reserved)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} labels, unk={self.unk!r})"

    def encode(self, label: str) -> int:
        """The id of `label`; an unknown label gives `unk_id` and is counted in `unknown`."""
        i = self._index.get(label)
        if i is None:
            self.unknown[label] += 1
            return self.unk_id
        return i

    def encode_many(self, labels: Iterable[str]) -> List[int]:
        """`encode` over a sequence (a sentence's tags)."""
        return [self.encode(label) for label in labels]

    def decode(self, i: int) -> str:
        """The label of id `i`; raises IndexError for an id outside the vocabulary."""
        i = int(i)
        if not 0 <= i < len(self.labels):
            raise IndexError(f"label id {i} outside the vocabulary of {len(self.labels)} labels")
        return self.labels[i]

    def decode_many(self, ids: Iterable[int]) -> List[str]:
        """`decode` over a sequence of ids."""
        return [self.decode(i) for i in ids]


class LabelVocab:
    """The intent and slot-tag vocabularies of one model.

    Multi-intent labels (`a#b`) are one class each, spelled by `normalize_intent`, so `a#b` and
    `b#a` share an id. Build with `from_examples` on the training split; save with the model.

    Args:
      intents: intent labels (without the reserved `<unk>`; it is added as id 0).
      slot_tags: slot tags (without the reserved `O` and `<unk>`; they are ids 0 and 1).

    Example:

    >>> from prado_tiny.data.example import Example
    >>> ex = Example(id="1", language="en", utterance="wake me at 9",
    ...              tokens=["wake", "me", "at", "9"], offsets=[(0, 4), (5, 7), (8, 10), (11, 12)],
    ...              intent="IN:CREATE_ALARM", slots=["O", "O", "O", "B-time"])
    >>> vocab = LabelVocab.from_examples([ex])
    >>> vocab.intents.labels, vocab.slots.labels
    (['<unk>', 'IN:CREATE_ALARM'], ['O', '<unk>', 'B-time', 'I-time'])
    >>> vocab.encode_intent("IN:GET_WEATHER")  # never seen in training
    0
    >>> path = vocab.save(model_dir)  # doctest: +SKIP
    >>> LabelVocab.load(model_dir) == vocab  # doctest: +SKIP
    True
    """

    def __init__(self, intents: Iterable[str], slot_tags: Iterable[str]):
        self.intents = Vocabulary((normalize_intent(x) for x in intents), reserved=(UNK,), unk=UNK)
        self.slots = Vocabulary(slot_tags, reserved=(OUTSIDE, UNK), unk=UNK)

    @classmethod
    def from_examples(cls, examples: Iterable[Any], complete_bio: bool = True) -> "LabelVocab":
        """Builds both vocabularies from training examples.

        Args:
          examples: `Example`s, or mappings with `intent` and `slots`.
          complete_bio: for every slot type seen as `B-X` or `I-X`, add both tags, so a type that
            only ever spans one token in training still has an `I-X` id (gold `I-X` tags at
            evaluation are then not unknowns).
        """
        intents, tags = set(), set()
        for ex in examples:
            if isinstance(ex, Mapping):
                intent, slots = ex["intent"], ex["slots"]
            else:
                intent, slots = ex.intent, ex.slots
            intents.add(normalize_intent(intent))
            tags.update(str(t) for t in slots)
        if complete_bio:
            for tag in list(tags):
                if len(tag) > 2 and tag[:2] in ("B-", "I-"):
                    tags.update(("B-" + tag[2:], "I-" + tag[2:]))
        return cls(intents, tags)

    # -- encoding ------------------------------------------------------------------------------

    @property
    def num_intents(self) -> int:
        return len(self.intents)

    @property
    def num_slot_tags(self) -> int:
        return len(self.slots)

    def encode_intent(self, label: str) -> int:
        """The id of an intent label (normalized first); unknown -> 0, counted."""
        return self.intents.encode(normalize_intent(label))

    def decode_intent(self, i: int) -> str:
        return self.intents.decode(i)

    def encode_slots(self, tags: Iterable[str]) -> List[int]:
        """Ids of a sentence's slot tags; unknown tags -> the `<unk>` id, counted."""
        return self.slots.encode_many(str(t) for t in tags)

    def decode_slots(self, ids: Iterable[int]) -> List[str]:
        return self.slots.decode_many(ids)

    @property
    def unknown(self) -> Dict[str, collections.Counter]:
        """Labels encoded as unknown so far: `{"intents": Counter, "slots": Counter}`."""
        return {"intents": self.intents.unknown, "slots": self.slots.unknown}

    # -- config and files ----------------------------------------------------------------------

    def get_config(self) -> Dict[str, Any]:
        """A JSON-able dict; ids are list positions, reserved entries included."""
        return {"format": FORMAT, "version": VERSION,
                "intents": list(self.intents.labels), "slot_tags": list(self.slots.labels)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "LabelVocab":
        """The inverse of `get_config`; raises VocabError if the dict is not one."""
        _check_config(config)
        return cls(config["intents"][1:], config["slot_tags"][2:])

    def save(self, path: PathLike) -> str:
        """Writes the vocabulary as JSON and returns the file written.

        `path` is a file, or an existing folder (the model's), which gets `label_vocab.json`.
        The write goes through a temporary file so that a crash never leaves half a vocabulary.
        """
        target = _resolve(path)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.get_config(), f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, target)
        return str(target)

    @classmethod
    def load(cls, path: PathLike) -> "LabelVocab":
        """Reads a vocabulary written by `save`; `path` is the file or the model folder.

        Raises VocabError naming the path if the file is missing, is not JSON, or is not a
        label vocabulary.
        """
        target = _resolve(path)
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise VocabError(f"{target}: label vocabulary file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise VocabError(f"{target}: cannot read label vocabulary: {e}") from e
        try:
            config = json.loads(text)
        except json.JSONDecodeError as e:
            raise VocabError(f"{target}: label vocabulary is not valid JSON: {e}") from e
        try:
            return cls.from_config(config)
        except VocabError as e:
            raise VocabError(f"{target}: {e}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LabelVocab) and self.get_config() == other.get_config()

    def __repr__(self) -> str:
        return f"LabelVocab({self.num_intents} intents, {self.num_slot_tags} slot tags)"


def _resolve(path: PathLike) -> pathlib.Path:
    p = pathlib.Path(path)
    return p / FILENAME if p.is_dir() else p


def _check_config(config: Any) -> None:
    """Raises VocabError unless `config` is a well-formed `get_config` dict."""
    if not isinstance(config, Mapping):
        raise VocabError("not a label vocabulary: expected a JSON object, "
                         f"got {type(config).__name__}")
    if config.get("format") != FORMAT:
        raise VocabError(f"not a label vocabulary: format is {config.get('format')!r}, "
                         f"expected {FORMAT!r}")
    if config.get("version") != VERSION:
        raise VocabError(f"unsupported label vocabulary version {config.get('version')!r} "
                         f"(this release reads version {VERSION})")
    for key, reserved in (("intents", [UNK]), ("slot_tags", [OUTSIDE, UNK])):
        labels = config.get(key)
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise VocabError(f"{key!r} must be a list of strings")
        if labels[:len(reserved)] != reserved:
            raise VocabError(f"{key!r} must start with the reserved entries {reserved}, "
                             f"found {labels[:len(reserved)]}")
        rest = labels[len(reserved):]
        if key == "intents" and any(normalize_intent(x) != x for x in rest):
            raise VocabError("'intents' must hold normalized labels (multi-intent parts sorted)")
        # Ids are positions, so any other order would silently remap a trained model's outputs.
        if rest != sorted(set(rest) - set(reserved)):
            raise VocabError(f"{key!r} must hold unique labels in sorted order after the reserved "
                             f"entries (the file was edited or written by another tool)")
