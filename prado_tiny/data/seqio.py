"""Reader for the ATIS / SNIPS layout of Goo et al. (2018): `<split>/seq.in`, `seq.out`, `label`.

The three files are line-aligned: line N of `seq.in` is a space-tokenised utterance, line N of
`seq.out` its BIO tags (one per token) and line N of `label` its intent (multi-intents joined by
`#`, kept as they are). They are read in lockstep, one line of each at a time, so memory does not
grow with the file. Language is always `en`.

Errors name `file:line` of the file at fault: an encoding problem, an empty utterance, tag line or
label, a malformed tag, and (never skipped, since every later row would be misattributed) one file
ending before the others. A tag count that differs from the token count keeps the row with all
tags `O` and `Example.unaligned` set, as the MultiATIS++ reader does; `strict_tags=True` makes it an
error.
"""
from __future__ import annotations

import os
from typing import Iterable, Iterator, List, Optional

from prado_tiny.data.align import bad_bio_tag
from prado_tiny.data.example import DataError, Example, ReadReport
from prado_tiny.data.lines import iter_lines
from prado_tiny.data.names import parse_languages, split_names
from prado_tiny.data.tokenizer import whitespace_tokenize

FILES = ("seq.in", "seq.out", "label")
LANGUAGE = "en"


def _is_split_dir(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, f)) for f in FILES)


def available_languages(data_dir: str) -> List[str]:
    """`['en']` when `data_dir` holds at least one `<split>/seq.in, seq.out, label`, else `[]`."""
    if not data_dir or not os.path.isdir(data_dir):
        return []
    for name in os.listdir(data_dir):
        if _is_split_dir(os.path.join(data_dir, name)):
            return [LANGUAGE]
    return []


def read(data_dir: str, split: str, languages: Optional[Iterable[str] | str] = None,
         report: Optional[ReadReport] = None, skip_bad_rows: bool = False) -> Iterator[Example]:
    """Yields the examples of `split` (`train`, `dev`/`valid`, `test`) from `data_dir/<split>/`.

    The split folder is located eagerly, so a missing split or a language other than `en` raises
    here rather than at the first `next()`.
    """
    wanted = parse_languages(languages)
    if wanted and wanted != [LANGUAGE]:
        other = ", ".join(lang for lang in wanted if lang != LANGUAGE)
        raise ValueError(f"{data_dir}: no data for language(s) {other}; available: {LANGUAGE}")
    for name in split_names(split):
        split_dir = os.path.join(data_dir, name)
        if os.path.isdir(split_dir):
            missing = [f for f in FILES if not os.path.isfile(os.path.join(split_dir, f))]
            if missing:
                raise FileNotFoundError(f"{split_dir}: missing {', '.join(missing)} "
                                        f"(expected {', '.join(FILES)})")
            return read_dir(split_dir, report=report, skip_bad_rows=skip_bad_rows)
    tried = ", ".join(f"{n}/seq.in" for n in split_names(split))
    raise FileNotFoundError(f"{data_dir}: no split {split!r} (looked for {tried})")


def read_dir(split_dir: str, report: Optional[ReadReport] = None, skip_bad_rows: bool = False,
             strict_tags: bool = False) -> Iterator[Example]:
    """Yields the examples of one split folder holding `seq.in`, `seq.out` and `label`.

    Args:
      split_dir: the folder (e.g. `atis/train`).
      report: collects rows, skipped rows and unaligned rows; a fresh one when None.
      skip_bad_rows: skip (and record) malformed rows instead of raising at the first.
      strict_tags: treat a tag count that differs from the token count as a malformed row.
    """
    report = report if report is not None else ReadReport()
    split_dir = str(split_dir)
    paths = [os.path.join(split_dir, f) for f in FILES]
    report.files.extend(paths)
    split_name = os.path.basename(os.path.normpath(split_dir))
    iters = [iter_lines(p) for p in paths]
    number = 0
    while True:
        number += 1
        items = [next(it, None) for it in iters]
        if all(item is None for item in items):
            return
        if any(item is None for item in items):
            # One file ended early: every later row would pair lines of different examples.
            short = next(i for i, item in enumerate(items) if item is None)
            longer = next(i for i, item in enumerate(items) if item is not None)
            raise DataError(paths[short], number,
                            f"{FILES[short]} ends after line {number - 1} but {FILES[longer]} has a "
                            f"line {number}; {', '.join(FILES)} must have the same number of lines")
        try:
            example = _parse(paths, number, [text for _, text in items], split_name, strict_tags)
        except DataError as err:
            if not skip_bad_rows:
                raise
            report.skip(err)
            continue
        report.count(example)
        yield example


def _parse(paths, number, texts, split_name, strict_tags) -> Example:
    """Builds one example from line `number` of the three files (texts may be DataErrors)."""
    for text in texts:
        if isinstance(text, DataError):
            raise text
    seq_in, seq_out, label = texts
    utterance = seq_in.strip()
    if not utterance:
        raise DataError(paths[0], number, "empty utterance")
    if not seq_out.strip():
        raise DataError(paths[1], number, "empty line (expected one BIO tag per token)")
    intent = label.strip()
    if not intent:
        raise DataError(paths[2], number, "empty intent label")
    tags = seq_out.split()
    problem = bad_bio_tag(tags)
    if problem:
        raise DataError(paths[1], number, problem)
    triples = whitespace_tokenize(utterance)
    unaligned = None
    if len(tags) != len(triples):
        message = f"tag count mismatch: {len(triples)} tokens, {len(tags)} slot tags"
        if strict_tags:
            raise DataError(paths[1], number, message)
        unaligned, tags = message, ["O"] * len(triples)
    return Example(
        id=f"{split_name}:{number}", language=LANGUAGE, utterance=utterance,
        tokens=[t for t, _, _ in triples], offsets=[(s, e) for _, s, e in triples],
        intent=intent, slots=tags, source=f"{paths[0]}:{number}", unaligned=unaligned)
