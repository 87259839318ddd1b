"""Tests for prado-data (prado_tiny.data_main): the report function, and the CLI run as a subprocess."""
import io
import json
import subprocess
import sys

import pytest

from prado_tiny import data_main
from prado_tiny.data.example import DataError, Example, ReadReport


def _example(i, lang="en", tokens=3, intent="play", slots=None, unaligned=None):
    toks = [f"w{j}" for j in range(tokens)]
    return Example(id=str(i), language=lang, utterance=" ".join(toks), tokens=toks,
                   offsets=[(0, 0)] * tokens, intent=intent, slots=slots or ["O"] * tokens,
                   source=f"f.tsv:{i}", unaligned=unaligned)


def test_summary_streams_an_iterator_and_counts_everything():
    consumed = []

    def examples():  # a generator: the report must not need len() or a second pass
        for i, n in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], start=1):
            consumed.append(i)
            yield _example(i, lang="de" if i % 2 else "en", tokens=n,
                           intent="a#b" if i == 1 else "play",
                           slots=["B-x", "I-x", "O", "I-y"] + ["O"] * (n - 4) if n >= 4 else None,
                           unaligned="tag count mismatch: 2 tokens, 3 slot tags" if i == 3 else None)

    report = ReadReport()
    report.skip(DataError("g.tsv", 7, "empty utterance"))
    out = io.StringIO()
    summary = data_main.print_report(examples(), report, out=out)
    assert consumed == list(range(1, 11))
    assert summary["rows"] == 10 and summary["rows_per_language"] == {"de": 5, "en": 5}
    assert summary["unaligned"] == [{"source": "f.tsv:3", "reason": "tag count mismatch: 2 tokens, 3 slot tags"}]
    assert summary["unaligned_per_language"] == {"de": 1, "en": 0}
    assert summary["skipped"] == [{"source": "g.tsv:7", "reason": "empty utterance"}]
    assert summary["intents"] == {"play": 9, "a#b": 1} and summary["multi_intent_rows"] == 1
    assert summary["slots"] == {"x": 7, "y": 7}  # an I- after another type starts a span
    assert summary["token_length"] == {"p50": 5, "p90": 9, "p95": 10, "p99": 10, "max": 10, "mean": 5.5}
    text = out.getvalue()
    assert "rows read: 10" in text and "f.tsv:3: tag count mismatch" in text and "g.tsv:7: empty utterance" in text
    assert "p50=5 p90=9 p95=10 p99=10 max=10" in text


def test_summary_of_nothing():
    summary = data_main.summarize(iter(()), ReadReport())
    assert summary["rows"] == 0 and summary["token_length"] == {} and summary["unaligned"] == []
    assert "rows read: 0" in data_main.format_summary(summary)


def test_long_listings_are_cut_on_the_console_only():
    summary = data_main.summarize(
        (_example(i, unaligned="no match: x") for i in range(30)), ReadReport())
    text = data_main.format_summary(summary, max_listed=5)
    assert "... and 25 more" in text and len(summary["unaligned"]) == 30
    assert "... and" not in data_main.format_summary(summary, max_listed=-1)


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "prado_tiny.data_main", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_cli_on_real_multiatis_writes_json(datasets_dir, tmp_path):
    out = tmp_path / "report.json"
    proc = _run("--dataset=multiatis", f"--data_dir={datasets_dir / 'multiatis'}", "--split=dev",
                "--languages=EN,pt,tr", f"--output_json={out}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["rows"] == 490 + 490 + 60
    assert report["rows_per_language"] == {"en": 490, "pt": 490, "tr": 60}
    assert report["unaligned_per_language"] == {"en": 0, "pt": 1, "tr": 0}
    assert report["unaligned"] == [{"source": f"{datasets_dir / 'multiatis' / 'dev_PT.tsv'}:417",
                                    "reason": "tag count mismatch: 19 tokens, 21 slot tags"}]
    assert report["skipped"] == [] and report["intents"]["atis_flight"] > 0
    assert set(report["token_length"]) == {"p50", "p90", "p95", "p99", "max", "mean"}
    assert "rows read: 1040" in proc.stdout and "dev_PT.tsv:417" in proc.stdout


def test_cli_flagfile_on_real_atis(datasets_dir, tmp_path):
    flagfile = tmp_path / "atis.flags"
    flagfile.write_text(f"--dataset=atis\n--data_dir={datasets_dir / 'atis'}\n--split=train\n"
                        f"--output_json={tmp_path / 'atis.json'}\n")
    proc = _run(f"--flagfile={flagfile}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "atis.json").read_text())
    assert report["rows"] == 4478 and report["unaligned"] == [] and report["rows_per_language"] == {"en": 4478}


@pytest.fixture
def malformed_dir(tmp_path):
    folder = tmp_path / "multiatis"
    folder.mkdir()
    (folder / "train_EN.tsv").write_bytes(
        b"id\tutterance\tslot_labels\tintent\n"
        b"1\tflights to denver\tO O B-toloc.city_name\tatis_flight\n"
        b"2\tflights to boston\tO O B-toloc.city_name\n"  # 3 columns
        b"3\tfares to dallas please\tO O B-toloc.city_name\tatis_airfare\n")  # 4 tokens, 3 tags
    return folder


def test_cli_stops_at_a_malformed_row_with_one_line(malformed_dir):
    proc = _run("--dataset=multiatis", f"--data_dir={malformed_dir}", "--split=train")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f"{malformed_dir / 'train_EN.tsv'}:3: expected 4 tab-separated columns, "
                                   "found 3")
    assert "Traceback" not in proc.stderr


def test_cli_skip_bad_rows_reports_them(malformed_dir, tmp_path):
    out = tmp_path / "r.json"
    proc = _run("--dataset=multiatis", f"--data_dir={malformed_dir}", "--split=train", "--skip_bad_rows",
                f"--output_json={out}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    path = malformed_dir / "train_EN.tsv"
    assert report["rows"] == 2
    assert report["skipped"] == [{"source": f"{path}:3", "reason": "expected 4 tab-separated columns, found 3"}]
    assert report["unaligned"] == [{"source": f"{path}:4", "reason": "tag count mismatch: 4 tokens, 3 slot tags"}]
    assert f"{path}:3: expected 4" in proc.stdout and f"{path}:4: tag count mismatch" in proc.stdout


@pytest.mark.parametrize("args,message", [
    (["--dataset=multiatis", "--split=train"], "needs a data folder"),
    (["--dataset=snips", "--data_dir={tmp}", "--split=train"], "does not look like the snips dataset"),
    (["--dataset=multiatis", "--data_dir={ds}/multiatis", "--languages=ko"], "available: de, en"),
    (["--dataset=atis", "--data_dir={ds}/atis", "--split=test"], "no split 'test'"),
])
def test_cli_usage_errors_are_one_line(datasets_dir, tmp_path, args, message):
    proc = _run(*[a.format(tmp=tmp_path, ds=datasets_dir) for a in args])
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and message in proc.stderr and "Traceback" not in proc.stderr


def test_cli_demo_needs_no_data_dir(tmp_path):
    out = tmp_path / "demo.json"
    proc = _run("--dataset=demo", "--split=train", f"--output_json={out}")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["rows"] > 0 and isinstance(report["unaligned"], list)
