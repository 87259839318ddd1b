"""Seq2seq targets without a word vocabulary: ontology tokens plus pointers to source tokens.

Follows Kandoor, "Tiny Neural Models for Seq2Seq" (arXiv 2108.03340): the pQRNN-MAtt decoder
emits a decoupled parse as ontology tokens (`[IN:X`, `[SL:Y`, `]`) and pointers `@i` ("copy
source token i"), so its output vocabulary is the ontology plus the source positions and holds
no word at all. The parse string is rebuilt from the pointers into the utterance's tokens.

Vocabulary (`OutputVocab`), ids stable and deterministic:

    0 <pad>   1 <bos>   2 <eos>   3 <unk>   4 <join>   5 <split>   6 ]
    7 ...     every `[IN:LABEL` and `[SL:LABEL` seen in training, sorted
    ...       @0 .. @(max_source_len - 1)      (`pointer_offset` is the id of @0)

`<unk>` opens a node whose label was not seen in training; whether it is an intent or a slot
follows from where it stands (intents and slots alternate), and it decodes as `IN:<unk>` or
`SL:<unk>`, which never matches a gold parse.

Words and tokens. A parse word is usually one source token, but not always: Thai is tokenized
into grapheme clusters (no word segmenter ships with a stock runtime, see `tokenizer`) while its
parse words are whole words, and a few words elsewhere span two tokens (`7pm.on` is `7` `pm.on`).
So a word is a run of consecutive source tokens, and two pointer rules say where words end:
consecutive pointers `@i @i+1` form one word when both tokens are in a script written without
spaces (`glues`), and separate words otherwise; `<join>` between two pointers glues them anyway
and `<split>` separates them anyway. `encode` emits a marker only where the rule is wrong, so
English needs almost none and Thai needs one `<split>` per word boundary inside a run of Thai.

Example (tokens `set an alarm for 7 am`):

    [IN:CREATE_ALARM [SL:DATE_TIME for 7 am ] ]  ->  [IN:CREATE_ALARM [SL:DATE_TIME @3 @4 @5 ] ] <eos>

A word that is no run of source tokens (a different spelling, part of a token such as French
`l’` of `l’église`) cannot be copied: `encode` raises `UnalignedWordError` and the caller counts
and skips the example. Letter case may differ (`Whatsapp` for `WhatsApp`): the word is then
copied in the utterance's case and the round trip differs in case only.

Decoding never crashes: `decode` repairs what a model can get wrong (tokens after `<eos>`,
pointers outside the utterance, a `]` that closes nothing, unclosed brackets, empty slots,
words outside the root intent, an intent directly inside an intent) and says so, or returns no
parse when there is no root intent at all. `TreeState` gives beam search the mask of ids that
keep a prefix well-formed.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from prado_tiny.data.example import Example
from prado_tiny.data.parse import Intent, Node, ParseError, Slot, canonical, parse_tree, to_string
from prado_tiny.data.tokenizer import char_class

FORMAT_VERSION = 1
PAD, BOS, EOS, UNK, JOIN, SPLIT = "<pad>", "<bos>", "<eos>", "<unk>", "<join>", "<split>"
SPECIALS = (PAD, BOS, EOS, UNK, JOIN, SPLIT)
CLOSE = "]"
POINTER_PREFIX = "@"
# Label an `<unk>` opener decodes to: `[IN:<unk>` parses, and never equals a gold label.
UNK_LABEL = "<unk>"

ParseLike = Union[Example, str]


class TargetError(ValueError):
    """An example that cannot be turned into target ids.

    Attributes:
      reason: a short code for counting (`word_not_in_tokens`, `word_inside_token`,
        `position_beyond_max_source_len`, `target_too_long`, `malformed_parse`, `no_parse`).
      source: the example's `file:line` (or whatever the caller passed), may be empty.
      message: what is wrong.
    """

    def __init__(self, reason: str, message: str, source: str = ""):
        self.reason = reason
        self.source = source or ""
        self.message = message
        super().__init__(f"{self.source}: {message}" if self.source else message)


class UnalignedWordError(TargetError):
    """A parse word that is no run of consecutive source tokens, so no pointer can copy it."""

    def __init__(self, word: str, tokens: Sequence[str], source: str = ""):
        self.word = word
        joined = "".join(tokens).casefold()
        # Part of a token (French `l’` of `l’église`, German `Duke` of `Dukes`) or not there at all
        # (a translation or a typo in the annotation): the first could be fixed by tokenizing finer.
        inside = bool(word) and "".join(word.split()).casefold() in joined
        reason = "word_inside_token" if inside else "word_not_in_tokens"
        where = "is part of a source token, not a run of whole tokens" if inside else "is not in the source tokens"
        shown = " ".join(tokens) if len(tokens) <= 40 else " ".join(tokens[:40]) + " ..."
        super().__init__(reason, f"parse word {word!r} {where} ({shown})", source)


class SourcePositionError(TargetError):
    """A parse word copied from a token at or beyond `max_source_len` (the encoder never sees it)."""


class TargetTooLongError(TargetError):
    """A target longer than the decoder's `max_len` (with `truncate=False`)."""


def glues(left: str, right: str) -> bool:
    """True when pointers to consecutive tokens `left`, `right` form one word by default: both
    are in a script written without spaces (Thai, Lao, Khmer, CJK, ...), whose tokens are grapheme
    clusters rather than words. Elsewhere consecutive tokens are separate words by default."""
    return bool(left) and bool(right) and char_class(left[0]) == "u" and char_class(right[0]) == "u"


@dataclasses.dataclass
class Decoded:
    """What `OutputVocab.decode` made of an id sequence.

    Attributes:
      parse: the parse in MTOP spelling (`to_string`), parseable by `parse.parse_tree`; None when
        nothing could be made of the ids (no root intent): count the example wrong.
      repaired: the ids were not a well-formed tree as generated and were fixed (see `problems`).
      valid: `parse` is not None.
      problems: what was fixed, in order, one short sentence each.
    """

    parse: Optional[str]
    repaired: bool
    valid: bool
    problems: List[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class TeacherForcing:
    """Decoder inputs and targets of one example, padded to `max_len`.

    `inputs` is `<bos>` followed by the targets shifted right by one; `targets` ends with `<eos>`
    unless `truncated`. `length` counts the real (non-pad) positions."""

    inputs: np.ndarray
    targets: np.ndarray
    length: int
    truncated: bool


class OutputVocab:
    """The output vocabulary: special tokens, ontology tokens, then source-position pointers.

    Args:
      ontology: node tags as the parse writes them without the bracket (`IN:GET_WEATHER`,
        `SL:LOCATION`); order and repeats do not matter (they are sorted).
      max_source_len: number of pointers `@0 .. @(max_source_len - 1)`; the encoder's
        `max_seq_len`, since a pointer can only copy a token the encoder has seen.

    Build one from training data with `OutputVocab.build`; store it with `to_dict` (JSON-able)
    and read it back with `from_dict`.
    """

    def __init__(self, ontology: Iterable[str], max_source_len: int):
        if not isinstance(max_source_len, (int, np.integer)) or max_source_len < 1:
            raise ValueError(f"max_source_len must be a positive integer, got {max_source_len!r}")
        tags = sorted(set(ontology))
        for tag in tags:
            kind, sep, name = tag.partition(":")
            if kind not in ("IN", "SL") or not sep or not name or any(c.isspace() or c in "[]" for c in tag):
                raise ValueError(f"ontology tag {tag!r} is not IN:NAME or SL:NAME (no spaces or brackets)")
        self._ontology = tuple(tags)
        self._max_source_len = int(max_source_len)
        self._tokens = SPECIALS + (CLOSE,) + tuple("[" + tag for tag in tags)
        self._pointer_offset = len(self._tokens)
        self._ids = {tok: i for i, tok in enumerate(self._tokens)}
        size = self.size
        # Per-id classes as boolean tables, so that a mask is a few vectorised ors.
        self._in_open = np.zeros(size, bool)
        self._sl_open = np.zeros(size, bool)
        for i, tok in enumerate(self._tokens):
            if tok.startswith("[IN:"):
                self._in_open[i] = True
            elif tok.startswith("[SL:"):
                self._sl_open[i] = True
        self._in_open[self.unk_id] = True  # <unk> takes whichever kind its place needs
        self._sl_open[self.unk_id] = True

    # -- construction and storage -----------------------------------------------------------

    @classmethod
    def build(cls, examples: Iterable[ParseLike], max_source_len: int) -> "OutputVocab":
        """The vocabulary of every intent and slot label in `examples` (Examples or parse strings;
        Examples without a parse are skipped). Raises TargetError for a malformed parse."""
        tags = set()
        for item in examples:
            parse, source = (item.parse, item.source) if isinstance(item, Example) else (item, "")
            if parse is None:
                continue
            try:
                tree = parse_tree(parse)
            except ParseError as e:
                raise TargetError("malformed_parse", f"malformed parse: {e.message}: {parse!r}", source) from None
            _collect_tags(tree, tags)
        return cls(tags, max_source_len)

    def to_dict(self) -> dict:
        """A JSON-able description from which `from_dict` rebuilds the same ids."""
        return {"format": "prado_tiny.seq2seq_targets.OutputVocab", "version": FORMAT_VERSION,
                "specials": list(SPECIALS), "ontology": list(self._ontology),
                "max_source_len": self._max_source_len, "size": self.size}

    @classmethod
    def from_dict(cls, d: dict) -> "OutputVocab":
        """The vocabulary `to_dict` described; raises ValueError for another format or version."""
        if not isinstance(d, dict) or d.get("format") != "prado_tiny.seq2seq_targets.OutputVocab":
            raise ValueError(f"not an OutputVocab description: {str(d)[:200]}")
        if d.get("version") != FORMAT_VERSION:
            raise ValueError(f"OutputVocab version {d.get('version')!r} is not the supported {FORMAT_VERSION}")
        if list(d.get("specials", [])) != list(SPECIALS):
            raise ValueError(f"OutputVocab specials {d.get('specials')!r} differ from this code's {list(SPECIALS)}")
        vocab = cls(d["ontology"], d["max_source_len"])
        if "size" in d and d["size"] != vocab.size:
            raise ValueError(f"OutputVocab size {d['size']} does not match its ontology and max_source_len "
                             f"({vocab.size})")
        return vocab

    def __eq__(self, other) -> bool:
        return (isinstance(other, OutputVocab) and self._ontology == other._ontology
                and self._max_source_len == other._max_source_len)

    def __repr__(self) -> str:
        return (f"OutputVocab({len(self._ontology)} labels, max_source_len={self._max_source_len}, "
                f"size={self.size})")

    # -- ids and tokens ----------------------------------------------------------------------

    @property
    def size(self) -> int:
        return self._pointer_offset + self._max_source_len

    def __len__(self) -> int:
        return self.size

    @property
    def pointer_offset(self) -> int:
        """The id of `@0`; `@i` is `pointer_offset + i`."""
        return self._pointer_offset

    @property
    def max_source_len(self) -> int:
        return self._max_source_len

    @property
    def ontology(self) -> Tuple[str, ...]:
        """The sorted node tags (`IN:X`, `SL:Y`)."""
        return self._ontology

    pad_id = property(lambda self: 0)
    bos_id = property(lambda self: 1)
    eos_id = property(lambda self: 2)
    unk_id = property(lambda self: 3)
    join_id = property(lambda self: 4)
    split_id = property(lambda self: 5)
    close_id = property(lambda self: 6)

    def token(self, i: int) -> str:
        """The spelling of id `i` (`<eos>`, `[IN:GET_ALARM`, `]`, `@3`)."""
        i = int(i)
        if 0 <= i < self._pointer_offset:
            return self._tokens[i]
        if self._pointer_offset <= i < self.size:
            return f"{POINTER_PREFIX}{i - self._pointer_offset}"
        raise IndexError(f"id {i} is outside the vocabulary (size {self.size})")

    def id(self, token: str) -> int:
        """The id of `token`; an unseen `[IN:`/`[SL:` label gives `unk_id`; anything else raises KeyError."""
        if token in self._ids:
            return self._ids[token]
        if token.startswith(POINTER_PREFIX) and token[1:].isdigit():
            return self.pointer(int(token[1:]))
        if token.startswith("[IN:") or token.startswith("[SL:"):
            return self.unk_id
        raise KeyError(f"{token!r} is not an output token")

    def tokens(self, ids: Iterable[int]) -> List[str]:
        """The spellings of `ids`, for reading a sequence."""
        return [self.token(i) for i in ids]

    def pointer(self, position: int) -> int:
        """The id of `@position`."""
        if not 0 <= position < self._max_source_len:
            raise IndexError(f"source position {position} is outside 0..{self._max_source_len - 1}")
        return self._pointer_offset + position

    def is_pointer(self, i: int) -> bool:
        return self._pointer_offset <= int(i) < self.size

    def position(self, i: int) -> int:
        """The source position a pointer id copies."""
        if not self.is_pointer(i):
            raise ValueError(f"id {i} ({self.token(i)}) is not a pointer")
        return int(i) - self._pointer_offset

    def is_opener(self, i: int) -> bool:
        """True for `[IN:...`, `[SL:...` and `<unk>` ids."""
        i = int(i)
        return 0 <= i < self.size and bool(self._in_open[i] or self._sl_open[i])

    # -- encoding -------------------------------------------------------------------------------

    def encode(self, item: ParseLike, tokens: Optional[Sequence[str]] = None, *, source: str = "",
               add_bos: bool = False, add_eos: bool = True, casefold: bool = True) -> List[int]:
        """The target ids of a parse: ontology ids and pointers into `tokens`, then `<eos>`.

        Args:
          item: an Example (its `parse`, `tokens` and `source` are used) or a parse string.
          tokens: the source tokens; defaults to the Example's.
          source: names the example in errors; defaults to the Example's `source`.
          add_bos: start with `<bos>` (a decoder input rather than a target).
          add_eos: end with `<eos>`.
          casefold: copy a word whose case differs from the utterance's (`Whatsapp`/`WhatsApp`)
            rather than raise; the decoded word then has the utterance's case.

        The consecutive words of a node (a slot's text) are placed together where they stand
        contiguously in the tokens, so `my` of `[SL:TODO my meeting ]` copies the `my` before
        `meeting`; otherwise word by word. Either way a placement is the next unused one at or
        after the previous word's (left to right), else the first unused one anywhere (decoupled
        parses reorder slots), else any (a word the parse repeats more often than the utterance).
        Exact spellings win over case-insensitive ones.

        Raises:
          UnalignedWordError: a word is no run of source tokens (`reason` says which kind).
          SourcePositionError: a word is copied from a token at or beyond `max_source_len`.
          TargetError: no parse, or a malformed one.
        """
        parse, tokens, source = _unpack(item, tokens, source)
        try:
            tree = parse_tree(parse)
        except ParseError as e:
            raise TargetError("malformed_parse", f"malformed parse: {e.message}: {parse!r}", source) from None
        aligner = _Aligner(list(tokens), casefold)
        ids = [self.bos_id] if add_bos else []
        self._encode_node(tree, tokens, aligner, ids, source)
        if add_eos:
            ids.append(self.eos_id)
        return ids

    def _encode_node(self, node: Node, tokens: Sequence[str], aligner: "_Aligner", ids: List[int],
                     source: str) -> None:
        ids.append(self._ids.get("[" + node.tag, self.unk_id))
        children = node.children
        k = 0
        while k < len(children):
            if isinstance(children[k], Node):
                self._encode_node(children[k], tokens, aligner, ids, source)
                k += 1
                continue
            # A phrase: the consecutive words of this node, placed together (slot text is contiguous).
            phrase = []
            while k < len(children) and not isinstance(children[k], Node):
                phrase.append(children[k])
                k += 1
            previous_end = None
            for word, (start, end) in zip(phrase, aligner.place_phrase(phrase, source)):
                if end >= self._max_source_len:
                    raise SourcePositionError(
                        "position_beyond_max_source_len",
                        f"parse word {word!r} is source token {end} but only tokens 0..{self._max_source_len - 1} "
                        f"can be copied (max_source_len {self._max_source_len})", source)
                # A new word right after the previous one would be glued to it by default: split.
                if (previous_end is not None and start == previous_end + 1
                        and glues(tokens[previous_end], tokens[start])):
                    ids.append(self.split_id)
                ids.append(self.pointer(start))
                for j in range(start + 1, end + 1):
                    if not glues(tokens[j - 1], tokens[j]):
                        ids.append(self.join_id)
                    ids.append(self.pointer(j))
                previous_end = end
        ids.append(self.close_id)

    def teacher_forcing(self, ids: Sequence[int], max_len: int, *, truncate: bool = False,
                        source: str = "") -> TeacherForcing:
        """Decoder inputs (`<bos>` + targets shifted right) and targets, padded to `max_len`.

        `ids` is `encode`'s output (a leading `<bos>` is ignored). A target longer than `max_len`
        raises TargetTooLongError naming `source`, or with `truncate` is cut (`truncated=True`; the
        cut target has no `<eos>`, so count such an example wrong rather than train it silently).
        """
        targets = [int(i) for i in ids]
        if targets and targets[0] == self.bos_id:
            targets = targets[1:]
        truncated = len(targets) > max_len
        if truncated:
            if not truncate:
                raise TargetTooLongError("target_too_long", f"target of {len(targets)} ids is longer than "
                                         f"max_len {max_len}", source)
            targets = targets[:max_len]
        inputs = [self.bos_id] + targets[:-1]
        out_in = np.full(max_len, self.pad_id, np.int32)
        out_tg = np.full(max_len, self.pad_id, np.int32)
        out_in[:len(inputs)] = inputs
        out_tg[:len(targets)] = targets
        return TeacherForcing(out_in, out_tg, len(targets), truncated)

    # -- decoding -------------------------------------------------------------------------------

    def decode(self, ids: Iterable[int], tokens: Sequence[str]) -> Decoded:
        """Rebuilds the parse string from ontology ids and pointers into `tokens`, repairing a
        sequence that is not a well-formed tree (never raises for any int ids). A leading `<bos>`
        is skipped, and everything from the first `<eos>` on is ignored."""
        return _Decoder(self, list(tokens)).run([int(i) for i in ids])

    # -- constrained decoding -----------------------------------------------------------------

    def start_state(self, num_source_tokens: int) -> "TreeState":
        """The constraint state before the first output id, for a source of that many tokens."""
        return TreeState(self, min(int(num_source_tokens), self._max_source_len))

    def allowed_next(self, prefix: Sequence[int], num_source_tokens: int,
                     max_len: Optional[int] = None) -> np.ndarray:
        """Boolean mask over the vocabulary: the ids that keep `prefix` (without or with a leading
        `<bos>`) on its way to a well-formed tree over `num_source_tokens` source tokens, finishing
        within `max_len` ids (`<eos>` included) when given. Raises ValueError when `prefix` itself
        breaks the rules (it cannot come from masked decoding)."""
        state = self.start_state(num_source_tokens)
        for i in _without_bos(list(prefix), self.bos_id):
            state = state.advance(i)
        return state.allowed(max_len)

    def allowed_next_batch(self, prefixes: Sequence[Sequence[int]], num_source_tokens: Sequence[int],
                           max_len: Optional[int] = None) -> np.ndarray:
        """`allowed_next` for a batch: a `[batch, size]` boolean array."""
        return np.stack([self.allowed_next(p, n, max_len) for p, n in zip(prefixes, num_source_tokens)])


def _collect_tags(node: Node, tags: set) -> None:
    tags.add(node.tag)
    for child in node.children:
        if isinstance(child, Node):
            _collect_tags(child, tags)


def _unpack(item: ParseLike, tokens: Optional[Sequence[str]], source: str):
    if isinstance(item, Example):
        parse = item.parse
        tokens = item.tokens if tokens is None else tokens
        source = source or item.source or item.id
    else:
        parse = item
    if parse is None:
        raise TargetError("no_parse", "the example has no decoupled parse", source)
    if tokens is None:
        raise ValueError("encode needs the source tokens (an Example, or tokens=...)")
    return parse, list(tokens), source


def _without_bos(ids: List[int], bos: int) -> List[int]:
    return ids[1:] if ids and ids[0] == bos else ids


class _Aligner:
    """Places parse words on runs of source tokens, left to right, each token used once if possible."""

    def __init__(self, tokens: List[str], casefold: bool):
        self.tokens = tokens
        self.folded = [t.casefold() for t in tokens] if casefold else None
        self.used = [False] * len(tokens)
        self.cursor = 0

    @staticmethod
    def _runs(word: str, tokens: List[str]) -> Dict[int, int]:
        """`{first: last}` of the token runs whose concatenation is exactly `word`."""
        runs = {}
        for i, tok in enumerate(tokens):
            if not tok or not word.startswith(tok):
                continue
            text, j = tok, i
            while len(text) < len(word) and j + 1 < len(tokens):
                j += 1
                text += tokens[j]
                if not word.startswith(text):
                    break
            if text == word:
                runs[i] = j
        return runs

    def _pick(self, candidates: List[List[Tuple[int, int]]]) -> List[Tuple[int, int]]:
        """The first candidate (in source order) that is unused and at or after the cursor, else
        the first unused one (decoupled parses reorder slots), else the first one."""
        free = [c for c in candidates if not any(any(self.used[s:e + 1]) for s, e in c)]
        ahead = [c for c in free if c[0][0] >= self.cursor]
        chosen = (ahead or free or candidates)[0]
        for s, e in chosen:
            for k in range(s, e + 1):
                self.used[k] = True
        self.cursor = chosen[-1][1] + 1
        return chosen

    def _chains(self, maps: List[Dict[int, int]]) -> List[List[Tuple[int, int]]]:
        """Placements of a phrase whose words follow each other without a gap."""
        out = []
        for start in sorted(maps[0]):
            chain, s = [], start
            for m in maps:
                if s not in m:
                    break
                chain.append((s, m[s]))
                s = m[s] + 1
            else:
                out.append(chain)
        return out

    def place_phrase(self, words: List[str], source: str) -> List[Tuple[int, int]]:
        """`(first, last)` token of each word of a phrase: where the whole phrase is contiguous if
        it is anywhere (so `my` of `my meeting` is the `my` before `meeting`), else word by word."""
        if len(words) > 1:
            exact = [self._runs(w, self.tokens) for w in words]
            chains = self._chains(exact)
            if not chains and self.folded is not None:
                folded = [self._runs(w.casefold(), self.folded) for w in words]
                chains = self._chains([{**f, **e} for e, f in zip(exact, folded)])
            if chains:
                return self._pick(chains)
        return [self.place(w, source) for w in words]

    def place(self, word: str, source: str) -> Tuple[int, int]:
        runs = self._runs(word, self.tokens)
        if not runs and self.folded is not None:
            runs = self._runs(word.casefold(), self.folded)
        if not runs:
            raise UnalignedWordError(word, self.tokens, source)
        return self._pick([[(s, e)] for s, e in sorted(runs.items())])[0]


@dataclasses.dataclass
class _Frame:
    """An open bracket while decoding: `keep` builds `node`; `unwrap` drops the brackets but keeps
    the content (an intent directly inside an intent); `discard` drops it all (a second root)."""

    mode: str
    node: Optional[Node]
    kind: str  # "IN" or "SL"
    parent: Optional[List] = None  # the children list `node` was appended to


class _Decoder:
    """The lenient rebuild behind `OutputVocab.decode`."""

    def __init__(self, vocab: OutputVocab, tokens: List[str]):
        self.v = vocab
        self.tokens = tokens
        self.problems: List[str] = []
        self.stack: List[_Frame] = []
        self.root: Optional[Intent] = None
        self.prefix: List = []  # words and slots before the root opened: they move into it
        self.last_pointer: Optional[int] = None  # previous id was this pointer (same container)
        self.marker: Optional[int] = None  # a pending <join>/<split>

    def run(self, ids: List[int]) -> Decoded:
        v = self.v
        ids = _without_bos(ids, v.bos_id)
        if v.eos_id in ids:
            cut = ids.index(v.eos_id)
            if any(i != v.pad_id for i in ids[cut + 1:]):
                self.problems.append("dropped ids after <eos>")
            ids = ids[:cut]
        for position, i in enumerate(ids):
            self.step(position, i)
        if self.marker is not None:
            self.problems.append(f"dropped a {v.token(self.marker)} at the end")
        if self.stack:
            self.problems.append(f"closed {len(self.stack)} unclosed bracket(s) at the end")
            while self.stack:
                self.close()
        if self.root is None:
            self.problems.append("no root intent")
            return Decoded(None, True, False, self.problems)
        if self.prefix:
            self.problems.append("moved words or slots before the root intent into it")
            self.root.children[:0] = self.prefix
        text = to_string(self.root)
        try:
            parse_tree(text)
        except ParseError as e:  # a bug here, not the model's: still never crash the caller
            self.problems.append(f"internal: rebuilt parse is malformed: {e.message}")
            return Decoded(None, True, False, self.problems)
        return Decoded(text, bool(self.problems), True, self.problems)

    def container(self) -> Optional[List]:
        """The children list new content goes to; None inside a discarded node."""
        for frame in reversed(self.stack):
            if frame.mode == "discard":
                return None
            if frame.mode == "keep":
                return frame.node.children
        return self.prefix if self.root is None else None

    def parent_kind(self) -> Optional[str]:
        for frame in reversed(self.stack):
            if frame.mode == "keep":
                return frame.kind
        return None

    def step(self, position: int, i: int) -> None:
        v = self.v
        if v.is_pointer(i):
            self.pointer(position, v.position(i))
            return
        if i in (v.join_id, v.split_id):
            if self.last_pointer is None or self.marker is not None:
                self.problems.append(f"dropped {v.token(i)} at {position}: not between two pointers")
            else:
                self.marker = i
            return
        if self.marker is not None:
            self.problems.append(f"dropped {v.token(self.marker)} before {position}: not followed by a pointer")
            self.marker = None
        self.last_pointer = None
        if not 0 <= i < v.size or i in (v.pad_id, v.bos_id):
            what = f"id {i}" if not 0 <= i < v.size else v.token(i)
            self.problems.append(f"dropped {what} at {position}")
        elif i == v.close_id:
            if not self.stack:
                self.problems.append(f"dropped ']' at {position}: it closes nothing")
            else:
                self.close()
        else:
            self.open(position, i)

    def pointer(self, position: int, k: int) -> None:
        if k >= len(self.tokens):
            self.problems.append(f"dropped @{k} at {position}: the source has {len(self.tokens)} tokens")
            return  # keep last_pointer and marker: the next pointer relates to the previous one
        self.reopen_root(position)
        target = self.container()
        glue = False
        if self.last_pointer is not None:
            if self.marker == self.v.join_id:
                glue = True
            elif self.marker is None:
                glue = k == self.last_pointer + 1 and glues(self.tokens[self.last_pointer], self.tokens[k])
        self.marker = None
        self.last_pointer = k
        if target is None:
            return
        if glue and target and isinstance(target[-1], str):
            target[-1] += self.tokens[k]
        else:
            target.append(self.tokens[k])

    def reopen_root(self, position: int) -> None:
        """Content after the root closed goes back into it (words outside any intent)."""
        if not self.stack and self.root is not None:
            self.problems.append(f"moved content after the root intent into it (at {position})")
            self.stack.append(_Frame("keep", self.root, "IN"))

    def open(self, position: int, i: int) -> None:
        v = self.v
        parent = self.parent_kind()
        if i == v.unk_id:
            kind = "SL" if parent == "IN" else "IN"
            label = UNK_LABEL
        else:
            kind, _, label = v.token(i)[1:].partition(":")
        if not self.stack and self.root is not None:
            if kind == "IN":
                self.problems.append(f"dropped a second root {v.token(i)} at {position}")
                self.stack.append(_Frame("discard", None, kind))
                return
            self.reopen_root(position)
            parent = "IN"
        if any(f.mode == "discard" for f in self.stack):
            self.stack.append(_Frame("discard", None, kind))
            return
        if parent == kind:
            self.problems.append(f"dropped the brackets of {v.token(i)} at {position}: directly inside an "
                                 f"{'intent' if kind == 'IN' else 'slot'}")
            self.stack.append(_Frame("unwrap", None, kind))
            return
        node = Intent(label) if kind == "IN" else Slot(label)
        if parent is None and kind == "IN":
            self.root = node
            self.stack.append(_Frame("keep", node, kind))
            return
        target = self.container()
        target.append(node)
        self.stack.append(_Frame("keep", node, kind, target))

    def close(self) -> None:
        frame = self.stack.pop()
        if frame.mode == "keep" and frame.kind == "SL" and not frame.node.children:
            self.problems.append(f"dropped the empty slot {frame.node.tag}")
            _remove_identity(frame.parent, frame.node)


def _remove_identity(children: List, node: Node) -> None:
    for k in range(len(children) - 1, -1, -1):
        if children[k] is node:
            del children[k]
            return


class TreeState:
    """Where a prefix of output ids stands, for masking the next id in (beam) search.

    Immutable: `advance` returns a new state, so beams can share prefixes. Rules: the first id
    opens an intent; inside an intent come slots, pointers and `]`; inside a slot come intents,
    pointers and `]` once the slot has content; `<join>`/`<split>` only between a pointer and the
    next position's pointer; `<eos>` only once the root is closed; after `<eos>` only `<pad>`.
    """

    __slots__ = ("vocab", "num_source", "stack", "last_pointer", "marker", "started", "done",
                 "finished", "length")

    def __init__(self, vocab: OutputVocab, num_source: int):
        self.vocab = vocab
        self.num_source = num_source
        self.stack: Tuple[Tuple[str, bool], ...] = ()  # (kind, has content) of each open node
        self.last_pointer: Optional[int] = None
        self.marker: Optional[int] = None
        self.started = False  # the root opened
        self.done = False  # the root closed
        self.finished = False  # <eos> emitted
        self.length = 0  # ids so far, <bos> not counted

    def _copy(self) -> "TreeState":
        out = TreeState.__new__(TreeState)
        for name in TreeState.__slots__:
            setattr(out, name, getattr(self, name))
        return out

    def _need(self, depth: int, top_empty_slot: bool, marker: bool) -> int:
        """Fewest ids that finish the tree from a state like this, `<eos>` included."""
        if not self.started and depth == 0:
            return 3  # [IN:X ] <eos>
        return depth + 1 + int(marker) + int(top_empty_slot)

    def allowed(self, max_len: Optional[int] = None) -> np.ndarray:
        """Boolean mask over the vocabulary of the ids that may come next."""
        v = self.vocab
        mask = np.zeros(v.size, bool)
        if self.finished:
            mask[v.pad_id] = True
            return mask
        budget = None if max_len is None else max_len - self.length - 1  # ids left after this one
        fits = lambda need: budget is None or need <= budget  # noqa: E731
        n, off = self.num_source, v.pointer_offset
        if self.marker is not None:
            nxt = self.last_pointer + 1
            if nxt < n and fits(self._need(len(self.stack), False, False)):
                mask[off + nxt] = True
            return mask
        if self.done:
            mask[v.eos_id] = True
            return mask
        depth = len(self.stack)
        if depth == 0:
            if fits(2):  # ] <eos>
                mask |= v._in_open
            return mask
        kind, content = self.stack[-1]
        if fits(self._need(depth + 1, kind == "IN", False)):
            # An intent may be empty; a new slot needs content.
            mask |= v._sl_open if kind == "IN" else v._in_open
        if n and fits(self._need(depth, False, False)):
            mask[off:off + n] = True
        if (kind == "IN" or content) and fits(self._need(depth - 1, False, False) if depth > 1 else 1):
            mask[v.close_id] = True
        if self.last_pointer is not None and self.last_pointer + 1 < n and fits(self._need(depth, False, True)):
            mask[v.join_id] = True
            mask[v.split_id] = True
        return mask

    def advance(self, i: int) -> "TreeState":
        """The state after id `i`; raises ValueError when `i` breaks the rules."""
        i = int(i)
        v = self.vocab
        out = self._copy()
        out.length += 1

        def bad(why: str):
            raise ValueError(f"id {i} ({v.token(i) if 0 <= i < v.size else '?'}) after "
                             f"{self.length} ids: {why}")

        if not 0 <= i < v.size:
            bad("outside the vocabulary")
        if self.finished:
            if i != v.pad_id:
                bad("only <pad> may follow <eos>")
            return out
        if self.marker is not None:
            if not (v.is_pointer(i) and v.position(i) == self.last_pointer + 1 and v.position(i) < self.num_source):
                bad(f"<join>/<split> must be followed by @{self.last_pointer + 1}")
            out.marker, out.last_pointer = None, v.position(i)
            return out
        if i == v.eos_id:
            if not self.done:
                bad("<eos> before the root intent is closed")
            out.finished = True
            return out
        if self.done:
            bad("only <eos> may follow the closed root")
        if i in (v.pad_id, v.bos_id):
            bad("<pad>/<bos> inside a sequence")
        if i in (v.join_id, v.split_id):
            if self.last_pointer is None or self.last_pointer + 1 >= self.num_source:
                bad("<join>/<split> only between two pointers")
            out.marker = i
            return out
        out.last_pointer = None
        if v.is_pointer(i):
            if not self.stack:
                bad("a pointer outside the root intent")
            if v.position(i) >= self.num_source:
                bad(f"pointer beyond the {self.num_source} source tokens")
            out.stack = self.stack[:-1] + ((self.stack[-1][0], True),)
            out.last_pointer = v.position(i)
            return out
        if i == v.close_id:
            if not self.stack:
                bad("']' closes nothing")
            kind, content = self.stack[-1]
            if kind == "SL" and not content:
                bad("']' would close an empty slot")
            out.stack = self.stack[:-1]
            out.done = not out.stack
            return out
        # An opener: the kind alternates with the parent's (<unk> takes the one its place needs).
        parent = self.stack[-1][0] if self.stack else None
        kind = "SL" if parent == "IN" else "IN"
        if not (v._in_open[i] if kind == "IN" else v._sl_open[i]):
            bad(f"expected {'an intent' if kind == 'IN' else 'a slot'} here")
        parents = self.stack[:-1] + ((parent, True),) if self.stack else ()
        out.stack = parents + ((kind, False),)
        out.started = True
        return out


@dataclasses.dataclass
class Coverage:
    """How much of a dataset `coverage` could encode and decode back exactly.

    Attributes:
      total: examples seen (with a parse).
      encoded: examples that encoded (and fit `max_len`, when given).
      exact: examples with `canonical(decode(encode(x))) == canonical(x.parse)`.
      failures: reason code -> count, for examples that did not encode (`TargetError.reason`)
        or did not round trip exactly (`case_differs`: only letter case differs; `mismatch`).
      samples: reason code -> the first few `source: message` strings.
    """

    total: int = 0
    encoded: int = 0
    exact: int = 0
    failures: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    samples: Dict[str, List[str]] = dataclasses.field(default_factory=dict)

    @property
    def encoded_fraction(self) -> float:
        return self.encoded / self.total if self.total else 0.0

    @property
    def exact_fraction(self) -> float:
        return self.exact / self.total if self.total else 0.0

    def _fail(self, reason: str, text: str, keep: int) -> None:
        self.failures[reason] += 1
        bucket = self.samples.setdefault(reason, [])
        if len(bucket) < keep:
            bucket.append(text)

    def summary(self) -> str:
        reasons = ", ".join(f"{k} {n}" for k, n in self.failures.most_common()) or "none"
        return (f"{self.exact}/{self.total} round trip exactly ({100 * self.exact_fraction:.2f}%), "
                f"{self.encoded} encode ({100 * self.encoded_fraction:.2f}%); failures: {reasons}")


def coverage(vocab: OutputVocab, examples: Iterable[Example], *,
             tokens_of: Optional[Callable[[Example], Sequence[str]]] = None,
             max_len: Optional[int] = None, casefold: bool = True, keep_samples: int = 5) -> Coverage:
    """Encodes and decodes every example with a parse; counts what encodes and what round trips.

    A sanity check before training: `exact_fraction` is the best tree exact match a pointer model
    over these tokens can reach. `tokens_of` picks the source tokens (default `Example.tokens`;
    pass the inference-time tokenizer's to see what a deployed model can reach).
    """
    report = Coverage()
    for ex in examples:
        if ex.parse is None:
            continue
        report.total += 1
        tokens = list(ex.tokens if tokens_of is None else tokens_of(ex))
        try:
            ids = vocab.encode(ex, tokens, casefold=casefold)
            if max_len is not None and len(ids) > max_len:
                raise TargetTooLongError("target_too_long", f"target of {len(ids)} ids is longer than "
                                         f"max_len {max_len}", ex.source)
        except TargetError as e:
            report._fail(e.reason, str(e), keep_samples)
            continue
        report.encoded += 1
        decoded = vocab.decode(ids, tokens)
        gold = canonical(ex.parse)
        if decoded.parse is not None and canonical(decoded.parse) == gold:
            report.exact += 1
        elif decoded.parse is not None and canonical(decoded.parse).casefold() == gold.casefold():
            report._fail("case_differs", f"{ex.source}: {decoded.parse!r} != {gold!r}", keep_samples)
        else:
            report._fail("mismatch", f"{ex.source}: {decoded.parse!r} != {gold!r} ({decoded.problems})",
                         keep_samples)
    return report
