"""Tests for prado_tiny.data.lines: every bad-line kind names file:line."""
import pytest

from prado_tiny.data.example import DataError, ReadReport
from prado_tiny.data.lines import read_rows, split_columns


def _parse(path):
    def parse_row(number, text):
        return split_columns(path, number, text, 2)
    return parse_row


@pytest.mark.parametrize("content,line,message", [
    (b"\xef\xbb\xbfa\tb\n", 1, "byte-order mark"),
    (b"a\tb\nc\td\r\n", 2, "CRLF"),
    (b"a\tb\n\xff\xfe\tx\n", 2, "invalid UTF-8"),
    (b"a\tb\n\nc\td\n", 2, "empty line"),
    (b"a\tb\nc\td\te\n", 2, "expected 2 tab-separated columns, found 3"),
])
def test_bad_lines_name_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "data.tsv"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        list(read_rows(str(path), _parse(str(path)), ReadReport()))
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)
    # With skip_bad_rows the good rows survive and the bad one is counted, not dropped silently.
    report = ReadReport()
    rows = list(read_rows(str(path), _parse(str(path)), report, skip_bad_rows=True))
    assert len(report.skipped) == 1 and report.skipped[0]["source"] == f"{path}:{line}"
    assert len(rows) == content.count(b"\n") - 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.tsv"):
        list(read_rows(str(tmp_path / "nope.tsv"), lambda n, t: t, ReadReport()))
