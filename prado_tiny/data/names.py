"""Language codes and split names: each dataset spells them its own way; users write ISO codes.

`en` matches `EN` (MultiATIS++), `en_XX` (MTOP), `en-US` (MASSIVE) and `en` (folders).
A split is asked for by any of the names datasets use for it; each reader tries the aliases in
order and uses the first file that exists.
"""
from __future__ import annotations

from typing import Iterable, List, Optional

SPLIT_ALIASES = {
    "train": ("train",),
    "dev": ("dev", "eval", "valid", "validation"),
    "test": ("test",),
}


def canonical_split(split: str) -> str:
    """`eval`, `valid`, `validation` and `dev` all name the development split."""
    s = split.strip().lower()
    for canon, aliases in SPLIT_ALIASES.items():
        if s in aliases:
            return canon
    known = sorted({a for aliases in SPLIT_ALIASES.values() for a in aliases})
    raise ValueError(f"unknown split {split!r}; use one of {', '.join(known)}")


def split_names(split: str) -> tuple:
    """The names to try on disk for `split`, the one the user wrote first."""
    canon = canonical_split(split)
    given = split.strip().lower()
    return (given,) + tuple(a for a in SPLIT_ALIASES[canon] if a != given)


def iso_language(code: str) -> str:
    """`en_XX`, `en-US`, `EN`, `en` -> `en`."""
    c = code.strip().replace("-", "_").split("_")[0].lower()
    if not c.isalpha() or not 2 <= len(c) <= 3:
        raise ValueError(f"not a language code: {code!r}")
    return c


def parse_languages(value: Optional[Iterable[str] | str]) -> Optional[List[str]]:
    """`"en,de"` or `["EN", "de-DE"]` -> `["en", "de"]`; None or empty means every language."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for item in items:
        if item.strip():
            lang = iso_language(item)
            if lang not in out:
                out.append(lang)
    return out or None
