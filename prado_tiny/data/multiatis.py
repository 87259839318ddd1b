"""Reader for MultiATIS++ TSV files (`<split>_<LANG>.tsv`, e.g. `train_EN.tsv`, `dev_ZH.tsv`).

Each file starts with the header `id<TAB>utterance<TAB>slot_labels<TAB>intent`; every other line is
one example whose `slot_labels` are space-separated BIO tags, one per space-separated token of the
utterance. Multi-intents (`atis_flight#atis_airfare`) are kept joined by `#`.

Tokens are split on ASCII spaces only. The French and Spanish files use a no-break space (U+00A0)
inside tokens (`12\\u00a0h`, `D.\\u00a0C.`) and their tags count it as part of the token; splitting on
every Unicode space would misalign 66 rows of the published files.

A row whose tag count differs from its token count (about 20 rows of the published non-English
files, where a translation was re-tokenised after tagging) is kept with every tag `O` and
`Example.unaligned` saying so, so that counts match the dataset and nothing is dropped silently;
`read_file(..., strict_tags=True)` makes it an error instead. Malformed rows (wrong column count,
empty utterance or intent, a tag that is not `O`/`B-x`/`I-x`, a bad header) raise `DataError`
naming `file:line`, or are skipped and counted with `skip_bad_rows`.
"""
from __future__ import annotations

import os
import re
from typing import Iterable, Iterator, List, Optional

from prado_tiny.data.align import bad_bio_tag
from prado_tiny.data.example import DataError, Example, ReadReport
from prado_tiny.data.lines import iter_lines, read_rows, split_columns
from prado_tiny.data.names import iso_language, parse_languages, split_names

HEADER = ("id", "utterance", "slot_labels", "intent")
_FILE_RE = re.compile(r"^([A-Za-z]+)_([A-Za-z]{2,3})\.tsv$")


def space_tokenize(text: str) -> list:
    """Splits on ASCII spaces only, returning `(token, start, end)` triples (see module docstring)."""
    tokens = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == " ":
            i += 1
            continue
        start = i
        while i < n and text[i] != " ":
            i += 1
        tokens.append((text[start:i], start, i))
    return tokens


def _files_by_split(data_dir: str) -> dict:
    """`{split name on disk: {iso language: path}}` for the MultiATIS++ files in `data_dir`."""
    out: dict = {}
    if not data_dir or not os.path.isdir(data_dir):
        return out
    for name in sorted(os.listdir(data_dir)):
        m = _FILE_RE.match(name)
        if m and os.path.isfile(os.path.join(data_dir, name)):
            out.setdefault(m.group(1).lower(), {})[iso_language(m.group(2))] = os.path.join(data_dir, name)
    return out


def available_languages(data_dir: str) -> List[str]:
    """ISO codes of the languages with at least one `<split>_<LANG>.tsv` file in `data_dir`."""
    return sorted({lang for files in _files_by_split(data_dir).values() for lang in files})


def read(data_dir: str, split: str, languages: Optional[Iterable[str] | str] = None,
         report: Optional[ReadReport] = None, skip_bad_rows: bool = False) -> Iterator[Example]:
    """Yields the examples of `split` for `languages` (ISO codes; None means all), language by language.

    The files are located eagerly, so a missing split or language raises here rather than at the
    first `next()`; rows are then read lazily, one line at a time.
    """
    report = report if report is not None else ReadReport()
    by_split = _files_by_split(data_dir)
    names = split_names(split)
    files = next((by_split[n] for n in names if n in by_split), None)
    if files is None:
        tried = ", ".join(f"{n}_<LANG>.tsv" for n in names)
        raise FileNotFoundError(f"{data_dir}: no MultiATIS++ files for split {split!r} (looked for {tried})")
    wanted = parse_languages(languages) or sorted(files)
    missing = [lang for lang in wanted if lang not in files]
    if missing:
        raise ValueError(f"{data_dir}: no {split!r} file for language(s) {', '.join(missing)}; "
                         f"available: {', '.join(sorted(files))}")
    return _read_all([(files[lang], lang) for lang in wanted], report, skip_bad_rows)


def _read_all(items, report, skip_bad_rows) -> Iterator[Example]:
    for path, lang in items:
        yield from read_file(path, lang, report=report, skip_bad_rows=skip_bad_rows)


def _check_header(path: str) -> None:
    """Raises DataError unless line 1 is the MultiATIS++ header; never skipped, since a wrong header
    means the columns cannot be trusted in any row."""
    first = next(iter_lines(path), None)
    if first is None:
        raise DataError(path, 1, f"empty file; expected the header {' '.join(HEADER)!r}")
    _, text = first
    if isinstance(text, DataError):
        raise text
    if tuple(text.split("\t")) != HEADER:
        raise DataError(path, 1, f"expected the tab-separated header {' '.join(HEADER)!r}, "
                                 f"found {text[:80]!r}")


def read_file(path: str, language: str, report: Optional[ReadReport] = None,
              skip_bad_rows: bool = False, strict_tags: bool = False) -> Iterator[Example]:
    """Yields the examples of one MultiATIS++ TSV file, tagged with `language` (any spelling).

    Args:
      path: the `.tsv` file.
      language: its language (`EN` or `en`); stored as the ISO code.
      report: collects rows, skipped rows and unaligned rows; a fresh one when None.
      skip_bad_rows: skip (and record) malformed rows instead of raising at the first.
      strict_tags: treat a tag count that differs from the token count as a malformed row.
    """
    report = report if report is not None else ReadReport()
    path = str(path)
    lang = iso_language(language)
    stem = os.path.splitext(os.path.basename(path))[0]
    _check_header(path)

    def parse_row(number: int, text: str) -> Optional[Example]:
        if number == 1:
            return None  # the header, checked above
        ex_id, utterance, tag_text, intent = split_columns(path, number, text, 4)
        if not utterance.strip():
            raise DataError(path, number, "empty utterance")
        intent = intent.strip()
        if not intent:
            raise DataError(path, number, "empty intent")
        tags = tag_text.split()  # a doubled space between tags (train_HI.tsv) is not an extra tag
        problem = bad_bio_tag(tags)
        if problem:
            raise DataError(path, number, problem)
        triples = space_tokenize(utterance)
        unaligned = None
        if len(tags) != len(triples):
            message = f"tag count mismatch: {len(triples)} tokens, {len(tags)} slot tags"
            if strict_tags:
                raise DataError(path, number, message)
            unaligned, tags = message, ["O"] * len(triples)
        return Example(
            id=ex_id.strip() or f"{stem}:{number}", language=lang, utterance=utterance,
            tokens=[t for t, _, _ in triples], offsets=[(s, e) for _, s, e in triples],
            intent=intent, slots=tags, source=f"{path}:{number}", unaligned=unaligned)

    for example in read_rows(path, parse_row, report, skip_bad_rows=skip_bad_rows):
        report.count(example)
        yield example
