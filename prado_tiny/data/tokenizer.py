"""The tokenizer shared by the dataset readers, training and inference.

Rules, chosen to reproduce MTOP's own tokens (its official files carry them) and to be simple
enough to port to an app in a few lines of Kotlin or Swift:

1. Whitespace separates tokens and is never part of one.
2. A word is a run of letters, combining marks and digits; `.`, `'` and `’` between two word
   characters stay inside it (`p.m`, `92.1`, `don't`, `U.S`); `-` does not (`e-mail` is 3 tokens).
   An integer followed by am/pm splits there (`7pm` is `7 pm`; `6.00pm`, `21st` stay whole), as MTOP.
   A trailing `'s` / `’s` after a letter is split off as its own token, as MTOP does (`James 's`;
   but `80's` is `80 ' s`).
3. Every other character (punctuation, symbols, emoji) is a token of its own.
4. Scripts written without spaces (Thai, Lao, Khmer, Myanmar, Han, Hiragana, Katakana, Tibetan)
   give one token per grapheme cluster (a base character and the marks that follow it), because
   no word segmenter ships with a stock runtime; datasets that segment those scripts with spaces
   keep their own tokens (the readers use `whitespace_tokenize` for them).

Every token carries `(start, end)` character offsets into the input, end exclusive.
"""
from __future__ import annotations

import functools
import unicodedata
from typing import List, Tuple

Token = Tuple[str, int, int]

# Blocks of scripts written without spaces between words.
_UNSEGMENTED_RANGES = (
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x31F0, 0x31FF),  # Katakana extensions
    (0x3400, 0x4DBF),  # CJK ext A
    (0x4E00, 0x9FFF),  # CJK unified
    (0xAA60, 0xAA7F),  # Myanmar ext A
    (0xF900, 0xFAFF),  # CJK compatibility
    (0xFF66, 0xFF9F),  # half-width Katakana
    (0x20000, 0x3134F),  # CJK ext B-G
)

_INNER_JOINERS = frozenset(".'\u2019")
_APOSTROPHES = frozenset("'\u2019")


@functools.lru_cache(maxsize=4096)
def char_class(ch: str) -> str:
    """'s' space, 'u' unsegmented-script base, 'm' mark, 'w' word char, 'p' anything else."""
    if ch.isspace():
        return "s"
    cat = unicodedata.category(ch)
    if cat[0] == "M":
        return "m"
    code = ord(ch)
    for lo, hi in _UNSEGMENTED_RANGES:
        if lo <= code <= hi:
            return "u"
    if cat[0] in "LN" or ch == "_":
        return "w"
    # Zero-width joiners, variation selectors and skin-tone modifiers glue to what precedes them
    # (emoji sequences).
    if cat == "Cf" or 0x1F3FB <= code <= 0x1F3FF:
        return "m"
    return "p"


def tokenize(text: str) -> List[Token]:
    """Splits `text` into `(token, start, end)` triples by the rules in this module's docstring."""
    tokens: List[Token] = []
    n = len(text)
    i = 0
    while i < n:
        cls = char_class(text[i])
        if cls == "s":
            i += 1
            continue
        start = i
        if cls == "w":
            i += 1
            while i < n:
                c = char_class(text[i])
                if c == "w" and _digits_then_letter(text, start, i):
                    break
                if c in ("w", "m"):
                    i += 1
                elif (text[i] in _INNER_JOINERS and i + 1 < n and char_class(text[i + 1]) == "w"
                      and not _is_possessive(text, i)
                      and not (text[i] in _APOSTROPHES and text[i - 1].isdigit())):
                    i += 1
                else:
                    break
            tokens.append((text[start:i], start, i))
            if i < n and _is_possessive(text, i):
                tokens.append((text[i:i + 2], i, i + 2))
                i += 2
            continue
        # A cluster: one unsegmented-script base, punctuation char or stray mark, plus its marks.
        i += 1
        while i < n and char_class(text[i]) == "m":
            i += 1
        tokens.append((text[start:i], start, i))
    return tokens


_MERIDIEMS = ("am", "pm", "a.m", "p.m")


def _digits_then_letter(text: str, start: int, i: int) -> bool:
    """True where text[start:i] is an integer followed by am/pm: MTOP splits `7pm` as `7 pm`."""
    if not text[start:i].isdigit():
        return False
    for m in _MERIDIEMS:
        end = i + len(m)
        if text[i:end].lower() == m and (end == len(text) or char_class(text[end]) != "w"):
            return True
    return False


def _is_possessive(text: str, i: int) -> bool:
    """True where text[i:] starts with `'s` that ends a word (`James's`, not `'sun`)."""
    return (text[i] in _APOSTROPHES and i + 1 < len(text) and text[i + 1] in "sS"
            and (i + 2 == len(text) or char_class(text[i + 2]) != "w") and i > 0
            and (text[i - 1].isalpha() or char_class(text[i - 1]) == "m"))


def whitespace_tokenize(text: str) -> List[Token]:
    """Splits on whitespace only: for datasets that give their tokens separated by spaces."""
    tokens: List[Token] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        while i < n and not text[i].isspace():
            i += 1
        tokens.append((text[start:i], start, i))
    return tokens
