"""Placing slots on tokens: character spans to BIO tags, and slot text to character spans.

Readers whose source gives BIO tags use them as they are. Readers whose source gives slot
character spans (MTOP official) or only slot text (MTOP flat, MASSIVE `annot_utt`) come here.
"""
from __future__ import annotations

import functools
import re
from typing import List, Optional, Sequence, Tuple

from prado_tiny.data.tokenizer import char_class

Span = Tuple[str, int, int]  # (slot type, start, end), character offsets, end exclusive


class AlignmentError(ValueError):
    """A slot that cannot be placed on the utterance; the message is the reason."""


def split_at_boundaries(utterance: str, tokens: Sequence[Tuple[str, int, int]],
                        spans: Sequence[Span]) -> List[Tuple[str, int, int]]:
    """Splits tokens where a slot span starts or ends inside one, so every span is whole tokens.

    The source's character spans win over the tokenizer: `[5pm]`-style slots inside a token
    become their own token rather than dragging the neighbouring characters into the slot.
    """
    cuts = set()
    for _, start, end in spans:
        cuts.add(start)
        cuts.add(end)
    out = []
    for _, s, e in tokens:
        inner = sorted(c for c in cuts if s < c < e)
        bounds = [s] + inner + [e]
        for a, b in zip(bounds, bounds[1:]):
            piece = utterance[a:b]
            # A cut next to whitespace inside a token cannot happen (tokens hold no whitespace),
            # but strip defensively so that utterance[start:end] == token always holds.
            lead = len(piece) - len(piece.lstrip())
            trail = len(piece) - len(piece.rstrip())
            if b - trail > a + lead:
                out.append((utterance[a + lead:b - trail], a + lead, b - trail))
    return out


def spans_to_bio(tokens: Sequence[Tuple[str, int, int]], spans: Sequence[Span]) -> List[str]:
    """BIO tags over `tokens` for character `spans`; a token belongs to a span it lies inside.

    Raises AlignmentError for a span that covers no token, or for two spans sharing a token.
    """
    tags = ["O"] * len(tokens)
    for label, start, end in sorted(spans, key=lambda x: (x[1], x[2])):
        inside = [i for i, (_, s, e) in enumerate(tokens) if s >= start and e <= end]
        if not inside:
            raise AlignmentError(f"span_covers_no_token: {label} [{start}:{end}]")
        if any(tags[i] != "O" for i in inside):
            raise AlignmentError(f"overlapping_slots: {label} [{start}:{end}]")
        tags[inside[0]] = "B-" + label
        for i in inside[1:]:
            tags[i] = "I-" + label
    return tags


def place_spans(tokens: Sequence[Tuple[str, int, int]],
                spans: Sequence[Span]) -> Tuple[List[str], List[str]]:
    """BIO tags for `spans` placed one at a time, in the given order, so that one bad span (an
    overlap, a span covering no token) costs only itself. Returns the tags and one reason per
    span that could not be placed."""
    placed: List[Span] = []
    problems: List[str] = []
    for span in spans:
        try:
            spans_to_bio(tokens, placed + [span])
        except AlignmentError as e:
            problems.append(str(e))
            continue
        placed.append(span)
    return spans_to_bio(tokens, placed), problems


_BIO_TAG = re.compile(r"^(O|[BI]-\S+)$")


def bad_bio_tag(tags: Sequence[str]) -> Optional[str]:
    """Why `tags` is not a BIO sequence (the first tag that is not O, B-type or I-type), or None."""
    for i, tag in enumerate(tags):
        if not _BIO_TAG.match(tag):
            return f"malformed slot tag {tag!r} (tag {i + 1}); expected O, B-<slot> or I-<slot>"
    return None


def bio_to_spans(tags: Sequence[str]) -> List[Tuple[str, int, int]]:
    """Chunks of BIO tags as `(type, first_token, last_token + 1)`, with conlleval's rules.

    A chunk starts at `B-X`, at `I-X` after `O`, and at `I-X` after a tag of another type; it ends
    where the next tag does not continue it. This is the one chunker the metrics use too.
    """
    chunks = []
    label, start = None, 0
    for i, tag in enumerate(list(tags) + ["O"]):
        if tag == "O" or tag == "" or tag is None:
            prefix, typ = "O", None
        elif len(tag) > 2 and tag[1] == "-" and tag[0] in "BIES":
            prefix, typ = tag[0], tag[2:]
        else:
            # A bare label (no prefix) is read as the inside of a chunk of that type.
            prefix, typ = "I", tag
        starts = prefix in ("B", "S") or (prefix in ("I", "E") and typ != label)
        if label is not None and (prefix == "O" or starts):
            chunks.append((label, start, i))
            label = None
        if prefix != "O" and (starts or label is None):
            label, start = typ, i
        if prefix in ("E", "S"):
            chunks.append((label, start, i + 1))
            label = None
    return chunks


def _squeeze(text: str) -> Tuple[str, List[int]]:
    """`text` without whitespace, and for each kept character its index in `text`."""
    kept, index = [], []
    for i, ch in enumerate(text):
        if not ch.isspace():
            kept.append(ch)
            index.append(i)
    return "".join(kept), index


def locate_slots(utterance: str, slots: Sequence[Tuple[str, str]], casefold: bool = True,
                 tokens: Optional[Sequence[Tuple[str, int, int]]] = None) -> Tuple[List[Span], List[str]]:
    """Finds each `(type, text)` slot in `utterance`, ignoring whitespace (Thai MTOP writes slot
    text space-tokenised while its utterances are unsegmented).

    Slots are searched left to right from the end of the previous one, then anywhere not yet
    taken, so a repeated word (`Steve and Steve`) gets its own occurrence. Returns the spans found
    and one reason per slot that was not found. With `tokens`, an occurrence that starts and ends
    on token boundaries wins over one that cuts a token (`amour`, not the `amour` of `l'amour`).
    """
    hay, index = _squeeze(utterance)
    starts = {s for _, s, _ in tokens or ()}
    ends = {e for _, _, e in tokens or ()}
    if casefold:
        hay = hay.lower()
    taken = [False] * len(hay)
    spans, problems = [], []
    cursor = 0
    for label, text in slots:
        needle, _ = _squeeze(text)
        if casefold:
            needle = needle.lower()
        if not needle:
            problems.append(f"empty_slot_text: {label}")
            continue
        # An occurrence made of whole words wins over one inside a word (`me` in `messaged`,
        # casefolded `I` in `reminder`); inside-word matches remain a fallback for Thai-like text.
        whole = functools.partial(_whole_words, utterance, index)
        tiers = (whole, None)
        if tokens:
            tiers = (lambda p, n: index[p] in starts and index[p + n - 1] + 1 in ends,) + tiers
        pos = None
        for ok in tiers:
            pos = _find_free(hay, needle, taken, cursor, ok)
            if pos is None:
                pos = _find_free(hay, needle, taken, 0, ok)
            if pos is not None:
                break
        if pos is None:
            problems.append(f"slot_text_not_in_utterance: {label} {text!r}")
            continue
        for k in range(pos, pos + len(needle)):
            taken[k] = True
        cursor = pos + len(needle)
        spans.append((label, index[pos], index[pos + len(needle) - 1] + 1))
    return spans, problems


def _find_free(hay: str, needle: str, taken: List[bool], start: int, ok=None) -> Optional[int]:
    pos = hay.find(needle, start)
    while pos != -1:
        if not any(taken[pos:pos + len(needle)]) and (ok is None or ok(pos, len(needle))):
            return pos
        pos = hay.find(needle, pos + 1)
    return None


def _whole_words(utterance: str, index: List[int], pos: int, length: int) -> bool:
    """False where a match of `length` squeezed characters at `pos` starts or ends inside a word
    (a word character, or a mark, directly on both sides of the cut)."""
    start, end = index[pos], index[pos + length - 1] + 1

    def inside(cut: int) -> bool:
        return (0 < cut < len(utterance) and char_class(utterance[cut - 1]) in "wm"
                and char_class(utterance[cut]) in "wm")

    return not inside(start) and not inside(end)
