"""Line-level reading shared by every reader: strict UTF-8, and file:line in every error.

A BOM, CRLF line ends and invalid UTF-8 are reported as errors on their line rather than
being repaired silently: a file with them was not written in the dataset's published format,
and silently stripping them has hidden label bugs before (`atis_flight\\r` as a label).
"""
from __future__ import annotations

import os
from typing import Callable, Iterator, Optional, Tuple

from prado_tiny.data.example import DataError, ReadReport

BOM = b"\xef\xbb\xbf"


def iter_lines(path: str) -> Iterator[Tuple[int, object]]:
    """Yields `(line_number, text)` or `(line_number, DataError)` for each line of `path`.

    Streaming: one line in memory at a time. Line numbers start at 1. The trailing `\\n` is removed.
    An error is yielded (not raised) so that the caller decides whether to skip or stop.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if raw.endswith(b"\n"):
                raw = raw[:-1]
            if number == 1 and raw.startswith(BOM):
                yield number, DataError(
                    path, number, "file starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 "
                    "without BOM (e.g. `sed -i '1s/^\\xEF\\xBB\\xBF//' FILE`)")
                continue
            if raw.endswith(b"\r"):
                yield number, DataError(
                    path, number, "CRLF line end (\\r\\n); convert the file to LF line ends "
                    "(e.g. `sed -i 's/\\r$//' FILE`)")
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield number, DataError(
                    path, number, f"invalid UTF-8 at byte {e.start} of the line ({raw[e.start:e.start + 4]!r})")
                continue
            yield number, text


def read_rows(path: str, parse_row: Callable[[int, str], Optional[object]], report: ReadReport,
              skip_bad_rows: bool = False, skip_blank: bool = True) -> Iterator[object]:
    """Runs `parse_row(line_number, text)` over the lines of `path`, applying the bad-row policy.

    `parse_row` raises DataError for a malformed row and may return None for a line that holds
    no example (a header). Without `skip_bad_rows` the first error is raised; with it the row is
    skipped and recorded in `report.skipped`.
    """
    report.files.append(str(path))
    for number, item in iter_lines(path):
        try:
            if isinstance(item, DataError):
                raise item
            if skip_blank and not item.strip():
                if item:
                    raise DataError(path, number, "line holds only whitespace")
                raise DataError(path, number, "empty line")
            out = parse_row(number, item)
        except DataError as err:
            if not skip_bad_rows:
                raise
            report.skip(err)
            continue
        if out is not None:
            yield out


def split_columns(path: str, number: int, text: str, expected, sep: str = "\t") -> list:
    """Splits a row into columns, checking the count (`expected` is an int or a set of ints)."""
    cols = text.split(sep)
    allowed = {expected} if isinstance(expected, int) else set(expected)
    if len(cols) not in allowed:
        want = " or ".join(str(n) for n in sorted(allowed))
        raise DataError(path, number, f"expected {want} tab-separated columns, found {len(cols)}")
    return cols
