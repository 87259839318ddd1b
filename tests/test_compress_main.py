"""Tests for prado-compress (prado_tiny.compress_main and prado_tiny.compress.report): a tiny
reference and a tiny task-aware model on the demo data, the offline sweep, table, JSON and PNG."""
import json
import os

import pytest

from conftest import run_module


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_bilstm_reference, tiny_bilstm_codes):
    """The reference and conftest's task-aware codes started from it (M=4, K=16)."""
    return tmp_path_factory.mktemp("compress"), tiny_bilstm_reference, tiny_bilstm_codes[0]


def test_report_rows_table_and_plot(models):
    root, ref, codes = models
    out = str(root / "report" / "demo")
    text = run_module("prado_tiny.compress_main", f"--reference={ref}", f"--compressed={codes}",
                      f"--compare={ref}", "--dataset=demo", "--languages=en", "--split=dev",
                      f"--out={out}")
    doc = json.load(open(out + ".json", encoding="utf-8"))
    rows = doc["rows"]
    kinds = [r["kind"] for r in rows]
    assert kinds[0] == "reference" and kinds.count("task_aware") == 1 and kinds[-1] == "other"
    methods = {r["method"] for r in rows if r["kind"] == "offline"}
    assert methods == {"int8", "product_quantization", "additive_codes", "low_rank",
                       "magnitude_pruning", "weight_clustering"}
    reference = rows[0]
    v, d = json.load(open(os.path.join(ref, "model.json"), encoding="utf-8"))["config"]["vocab_size"], 32
    assert reference["table_bytes"] == 4 * v * d
    task = next(r for r in rows if r["kind"] == "task_aware")
    assert task["table_bytes"] == v * 2 + 4 * 16 * 32 and task["rate"] > 0.9
    assert task["setting"] == "M=4 K=16 (codes)"  # names the model folder
    int8 = next(r for r in rows if r["method"] == "int8")
    # int8 alone barely moves a trained model; pruning 99% of the table must hurt more.
    pruned = next(r for r in rows if r["setting"] == "sparsity=0.99")
    assert abs(int8["metrics"]["exact_match"] - reference["metrics"]["exact_match"]) < 0.05
    assert pruned["metrics"]["exact_match"] < int8["metrics"]["exact_match"]
    # The --compare row is the reference model again: the same scores.
    assert rows[-1]["metrics"] == reference["metrics"]
    assert "| reference | uncompressed |" in text and "task_aware_codes" in text
    # One at-equal-size line per offline method, each within 1.25x the codes' bytes.
    at = doc["at_equal_size"]
    assert sorted(c["method"] for c in at) == sorted(methods)
    for c in at:
        assert c["offline_bytes"] is None or c["offline_bytes"] <= 1.25 * task["table_bytes"]
    assert "offline method's best setting" in text
    with open(out + ".png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_errors(models):
    """Each from model.json, before the reference's offline sweep (a wrong --compressed used to
    wait for all of it)."""
    root, ref, codes = models
    out = run_module("prado_tiny.compress_main", f"--reference={codes}", "--dataset=demo",
                     "--split=dev", f"--out={root / 'x'}", ok=False)
    assert "must be an embedding-table model" in out
    out = run_module("prado_tiny.compress_main", f"--reference={ref}", f"--compressed={ref}",
                     "--dataset=demo", "--split=dev", f"--out={root / 'x'}", ok=False)
    assert "not a compressed-embedding model" in out
    out = run_module("prado_tiny.compress_main", f"--reference={root / 'nope'}", "--dataset=demo",
                     ok=False)
    assert "no such model folder" in out
    out = run_module("prado_tiny.compress_main", f"--reference={root}", "--dataset=demo", ok=False)
    assert "not a prado-train model folder (no model.json)" in out
