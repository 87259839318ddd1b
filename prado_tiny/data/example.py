"""The one example type every dataset reader yields, and the error and report types they share."""
from __future__ import annotations

import collections
import dataclasses
from typing import Optional


@dataclasses.dataclass
class Example:
    """One NLU example, whatever dataset it came from.

    Attributes:
      id: the dataset's id, or `<file stem>:<line>` when the format has none.
      language: ISO 639-1 code (`en`, `de`, `th`), whatever the dataset calls it.
      utterance: the raw text.
      tokens: tokens of the utterance (the dataset's own where it gives them).
      offsets: `(start, end)` character offsets of each token into `utterance`, end exclusive;
        `utterance[start:end] == tokens[i]` always holds.
      intent: the intent label; multi-intents are kept joined by `#` (`atis_flight#atis_airfare`).
      slots: BIO tags over `tokens` (`O`, `B-time`, `I-time`).
      parse: the decoupled parse (`[IN:X [SL:Y words ] ]`) where the source has one, else None.
      source: `file:line` of the row, for error messages and reports.
      domain: the dataset's domain or scenario, when given.
      unaligned: None, or why some slot of the source could not be placed on the tokens (those slot
        tokens are tagged `O`; the row is kept so that nothing is dropped silently).
    """

    id: str
    language: str
    utterance: str
    tokens: list
    offsets: list
    intent: str
    slots: list
    parse: Optional[str] = None
    source: str = ""
    domain: Optional[str] = None
    unaligned: Optional[str] = None

    @property
    def intents(self) -> tuple:
        """The intent labels of a multi-intent, in the dataset's order."""
        return tuple(self.intent.split("#"))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["offsets"] = [list(o) for o in self.offsets]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Example":
        d = dict(d)
        d["offsets"] = [tuple(o) for o in d["offsets"]]
        return cls(**d)


class DataError(ValueError):
    """A malformed row: names the file, the line and what is wrong."""

    def __init__(self, path: str, line: int, message: str):
        self.path = str(path)
        self.line = line
        self.message = message
        super().__init__(f"{self.path}:{line}: {message}")


@dataclasses.dataclass
class ReadReport:
    """What a read saw: rows yielded, rows skipped (only with skip_bad_rows) and unaligned rows."""

    rows: int = 0
    skipped: list = dataclasses.field(default_factory=list)  # [{"source", "reason"}]
    unaligned: list = dataclasses.field(default_factory=list)  # [{"source", "reason"}]
    truncated: int = 0
    files: list = dataclasses.field(default_factory=list)

    def skip(self, err: DataError) -> None:
        self.skipped.append({"source": f"{err.path}:{err.line}", "reason": err.message})

    def count(self, example: Example) -> None:
        self.rows += 1
        if example.unaligned:
            self.unaligned.append({"source": example.source, "reason": example.unaligned})

    def reasons(self, which: str = "unaligned") -> collections.Counter:
        return collections.Counter(r["reason"].split(":")[0] for r in getattr(self, which))
