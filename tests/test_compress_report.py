"""Tests for prado_tiny.compress.report: the at-equal-size comparison and the tables, on rows
built by hand (the end-to-end run is in test_compress_main.py)."""
from prado_tiny.compress import report
from prado_tiny.compress.report import Row


def _row(kind, method, setting, nbytes, em):
    return Row(kind, method, setting, nbytes, None if nbytes is None else 1 - nbytes / 4000.0,
               {"exact_match": em, "intent_accuracy": None, "slot_f1": None})


ROWS = [
    _row("reference", "uncompressed", "10x100 float32", 4000, 0.80),
    _row("offline", "low_rank", "rank=8", 110, 0.70),     # within 1.25 x 100 bytes
    _row("offline", "low_rank", "rank=4", 60, 0.50),
    _row("offline", "low_rank", "rank=32", 900, 0.79),    # too large: not compared
    _row("offline", "int8", "int8", 1000, 0.80),          # never this small
    _row("offline", "product_quantization", "m=8", 100, 0.76),
    _row("task_aware", "task_aware_codes", "M=8 K=16", 100, 0.75),
    _row("other", "pnlp_mixer", "mixer", None, 0.77),
]


def test_compare_at_size_picks_best_within_budget():
    got = {c["method"]: c for c in report.compare_at_size(ROWS)}
    assert set(got) == {"low_rank", "int8", "product_quantization"}
    assert got["low_rank"]["offline_setting"] == "rank=8" and got["low_rank"]["codes_win"] is True
    assert got["int8"]["offline_setting"] is None and got["int8"]["offline_smallest_bytes"] == 1000
    assert got["int8"]["codes_win"] is None
    # PQ scores higher at the same size: the comparison says so rather than hiding it.
    assert got["product_quantization"]["codes_win"] is False
    text = report.comparison_table(report.compare_at_size(ROWS))
    assert "| product_quantization | m=8 | 100 | 76.00 | NO |" in text
    assert "none this small (smallest 1,000 B)" in text


def test_slack_widens_the_budget():
    got = {c["method"]: c for c in report.compare_at_size(ROWS, slack=10.0)}
    assert got["low_rank"]["offline_setting"] == "rank=32" and got["low_rank"]["codes_win"] is False
    assert got["int8"]["offline_setting"] == "int8"


def test_table_degradation_is_relative_to_reference():
    text = report.table(ROWS)
    # (0.80 - 0.75) / 0.80 = 6.25 %
    assert "| task_aware | task_aware_codes | M=8 K=16 | 100 | 97.50 | 75.00 | - | - | 6.25 | - |" in text
    assert report.comparison_table([]) == ""
