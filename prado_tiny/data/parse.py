"""Decoupled semantic parses (`[IN:X [SL:Y words ] ]`): a tree type, a strict parser, canonical
strings for tree exact match, and the flat frame (top-level intent and slots) of a tree.

Two spellings are read: MTOP's, where every bracket is a separate space-delimited token
(`[IN:GET_ALARM [SL:DATE_TIME for today ] ]`), and MASSIVE `_sp`'s, where `]` is glued to the last
word (`[SL:time nine am]`). Both give the same tree; `to_string` writes the MTOP spelling, which
is also the canonical form that exact match compares.

Grammar (the TOP/MTOP representation): the root is an intent; an intent holds words and slots; a
slot holds words and intents (a nested intent is how MTOP writes compositional queries); a slot
holds at least one word or intent. Anything else is a ParseError: a model's malformed output then
simply fails exact match.
"""
from __future__ import annotations

import dataclasses
from typing import List, Optional, Sequence, Tuple, Union

from prado_tiny.data.align import locate_slots, place_spans, split_at_boundaries
from prado_tiny.data.tokenizer import tokenize

Token = Tuple[str, int, int]


class ParseError(ValueError):
    """A string that is not a well-formed decoupled parse; the message says what and where."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


@dataclasses.dataclass
class Node:
    """A bracketed node: `label` is the name without its `IN:`/`SL:` prefix; `children` are
    `Node`s and word strings, in source order."""

    label: str
    children: List[Union["Node", str]] = dataclasses.field(default_factory=list)

    KIND = ""  # "IN" or "SL" in the subclasses

    @property
    def tag(self) -> str:
        """The label as written in the parse: `IN:GET_WEATHER`, `SL:LOCATION`."""
        return f"{self.KIND}:{self.label}"

    def words(self) -> List[str]:
        """Every word below this node, left to right (the node's text span)."""
        out: List[str] = []
        for child in self.children:
            if isinstance(child, Node):
                out.extend(child.words())
            else:
                out.append(child)
        return out

    def text(self) -> str:
        return " ".join(self.words())

    def __str__(self) -> str:
        return to_string(self)


class Intent(Node):
    """An intent node (`IN:`)."""

    KIND = "IN"


class Slot(Node):
    """A slot node (`SL:`)."""

    KIND = "SL"


_KINDS = {"IN": Intent, "SL": Slot}


def _lex(s: str) -> List[Tuple[str, str, int]]:
    """Splits a parse string into `(kind, text, position)` items: `open` (text = label), `close`
    and `word`. A `[` always opens a node and a `]` always closes one, wherever they stand, so the
    MASSIVE spelling `nine am]` lexes as the word `am` and a close."""
    items = []
    i, n = 0, len(s)
    while i < n:
        ch = s[i]
        if ch.isspace():
            i += 1
        elif ch == "[":
            start = i
            i += 1
            while i < n and s[i].isspace():  # tolerate `[ IN:X`
                i += 1
            j = i
            while j < n and not s[j].isspace() and s[j] not in "[]":
                j += 1
            items.append(("open", s[i:j], start))
            i = j
        elif ch == "]":
            items.append(("close", "]", i))
            i += 1
        else:
            j = i
            while j < n and not s[j].isspace() and s[j] not in "[]":
                j += 1
            items.append(("word", s[i:j], i))
            i = j
    return items


def _make_node(label: str, pos: int) -> Node:
    if not label:
        raise ParseError(f"empty label after '[' at char {pos}")
    kind, sep, name = label.partition(":")
    if not sep or kind not in _KINDS:
        raise ParseError(f"label {label!r} at char {pos} is not IN:NAME or SL:NAME")
    if not name:
        raise ParseError(f"empty {kind} name in {label!r} at char {pos}")
    return _KINDS[kind](name)


def parse_tree(s: str) -> Intent:
    """Parses a decoupled parse string into its tree; raises ParseError if it is malformed."""
    if not isinstance(s, str) or not s.strip():
        raise ParseError("empty parse")
    stack: List[Tuple[Node, int]] = []
    root: Optional[Node] = None
    for kind, text, pos in _lex(s):
        if kind == "open":
            node = _make_node(text, pos)
            if stack:
                parent = stack[-1][0]
                if type(parent) is type(node):
                    # Intents alternate with slots in the TOP representation.
                    raise ParseError(f"{node.tag} at char {pos} directly inside {parent.tag}")
                parent.children.append(node)
            elif root is not None:
                raise ParseError(f"second root {node.tag} at char {pos}: text outside the root")
            else:
                if not isinstance(node, Intent):
                    raise ParseError(f"the root must be an intent, found {node.tag}")
                root = node
            stack.append((node, pos))
        elif kind == "close":
            if not stack:
                raise ParseError(f"unmatched ']' at char {pos}")
            node, opened = stack.pop()
            if isinstance(node, Slot) and not node.children:
                raise ParseError(f"empty slot {node.tag} at char {opened}")
        else:
            if not stack:
                raise ParseError(f"word {text!r} at char {pos} is outside the root")
            stack[-1][0].children.append(text)
    if stack:
        node, opened = stack[-1]
        raise ParseError(f"unclosed '[' of {node.tag} at char {opened}")
    if root is None:
        raise ParseError("no '[IN:...' in the parse")
    return root


def to_string(tree: Node) -> str:
    """The MTOP spelling: `[IN:X [SL:Y w1 w2 ] ]`, single spaces, every bracket its own token."""
    parts = ["[" + tree.tag]
    for child in tree.children:
        parts.append(to_string(child) if isinstance(child, Node) else child)
    parts.append("]")
    return " ".join(parts)


def canonical(s: str) -> str:
    """The canonical string of a parse for exact match: MTOP spelling, whitespace normalised, child
    order kept (MTOP's exact match is order sensitive). Raises ParseError if `s` is malformed."""
    return to_string(parse_tree(s))


def flat_frame(tree: Union[Node, str]) -> Tuple[str, List[Tuple[str, str]]]:
    """`(intent, [(slot_type, slot_text), ...])` of the root: top-level slots only, in order. A slot
    that holds a nested intent gets the text of every word below it. Labels have no prefix."""
    if isinstance(tree, str):
        tree = parse_tree(tree)
    slots = [(c.label, c.text()) for c in tree.children if isinstance(c, Slot)]
    return tree.label, slots


def flat_to_bio(utterance: str, slots: Sequence[Tuple[str, str]],
                tokens: Optional[Sequence[Token]] = None) -> Tuple[List[Token], List[str], List[str]]:
    """Places a flat frame's `(slot_type, slot_text)` slots on `utterance` and tags its tokens.

    Slot text -> character spans (`align.locate_slots`: whitespace and case insensitive, preferring
    occurrences on token boundaries, then on word boundaries) -> tokens split where a span starts
    or ends inside one (`split_at_boundaries`) -> BIO (`place_spans`).
    `tokens` defaults to `tokenize(utterance)`. Returns `(tokens, tags, problems)`; a slot that
    cannot be placed leaves its tokens `O` and adds one `reason_code: details` string to problems.
    """
    if tokens is None:
        tokens = tokenize(utterance)
    spans, problems = _place(utterance, list(slots), tokens)
    tokens = split_at_boundaries(utterance, tokens, spans)
    tags, more = place_spans(tokens, spans)
    return list(tokens), tags, problems + more


def _place(utterance: str, slots: List[Tuple[str, str]], tokens) -> Tuple[list, List[str]]:
    """`locate_slots`, retried longest slot first when some slot found its text taken (a short
    slot placed first can take the only free occurrence a longer one needs: PERSON_REMINDED `my`
    before TODO `my class`); keeps whichever placement places more slots. Slots whose text is in
    the utterance but only under other slots get reason `overlapping_slots` (or `duplicate_slot`
    for a slot repeated more often than its text occurs) instead of `slot_text_not_in_utterance`.
    """
    spans, problems = locate_slots(utterance, slots, tokens=tokens)
    if not problems:
        return spans, problems
    by_length = sorted(slots, key=lambda sl: -len(_squeezed(sl[1])))
    spans2, problems2 = locate_slots(utterance, by_length, tokens=tokens)
    if len(problems2) < len(problems):
        spans, problems = spans2, problems2
    hay = _squeezed(utterance)
    out = []
    for problem in problems:
        code, _, _ = problem.partition(":")
        slot = next((sl for sl in slots if problem == f"{code}: {sl[0]} {sl[1]!r}"), None)
        if code == "slot_text_not_in_utterance" and slot is not None:
            needle = _squeezed(slot[1])
            if needle and needle in hay:
                if slots.count(slot) > hay.count(needle):
                    problem = f"duplicate_slot: {slot[0]} {slot[1]!r} given {slots.count(slot)} times"
                else:
                    problem = f"overlapping_slots: {slot[0]} {slot[1]!r} lies inside another slot"
        out.append(problem)
    return spans, out


def _squeezed(text: str) -> str:
    """Whitespace removed and casefolded, as `locate_slots` compares text."""
    return "".join(text.split()).lower()
