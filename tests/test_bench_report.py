"""prado_tiny.bench.report: timings, ratios against the reference, prado-eval metrics, the
Markdown table, JSON and the PNG plot."""
import json

import numpy as np
import pytest

from prado_tiny.bench import report
from prado_tiny.bench.report import BenchError, BenchRecord


def rec(name, size, p50, target="local", reference=False):
    r = BenchRecord(name=name, model=f"/m/{name}/model.tflite", target=target, size_bytes=size,
                    reference=reference)
    report.fill_timings(r, [p50 * 0.9, p50, p50 * 1.1])
    return r


def test_fill_timings_percentiles():
    r = BenchRecord(name="a", model="a.tflite", target="local")
    samples = np.arange(1, 101, dtype=float)  # 1..100 us
    report.fill_timings(r, samples)
    assert r.runs == 100 and r.mean_us == 50.5 and r.min_us == 1
    assert r.p50_us == pytest.approx(50.5) and r.p90_us == pytest.approx(90.1)
    assert r.p99_us == pytest.approx(99.01) and r.std_us == pytest.approx(samples.std())
    with pytest.raises(BenchError, match="no timed runs.*--runs"):
        report.fill_timings(r, [])


def test_ratios_against_the_reference_of_the_same_target():
    recs = [rec("small", 1_000, 10.0), rec("ref", 200_000, 2_000.0, reference=True),
            rec("phone", 1_000, 5.0, target="adb")]
    report.apply_reference(recs)
    assert recs[0].size_ratio == 200.0 and recs[0].latency_ratio == pytest.approx(200.0)
    assert recs[1].size_ratio == 1.0
    assert recs[2].size_ratio is None  # no reference was run on adb
    # Without p50 (benchmark_model's old output) the mean is compared.
    a = BenchRecord(name="x", model="x", target="adb", size_bytes=10, mean_us=4.0)
    b = BenchRecord(name="r", model="r", target="adb", size_bytes=100, mean_us=40.0, reference=True)
    report.apply_reference([a, b])
    assert a.latency_ratio == 10.0


def test_read_and_attach_prado_eval_metrics(tmp_path):
    doc = {"model": str(tmp_path / "small" / "model.tflite"), "dataset": "demo", "split": "dev",
           "languages": [], "examples": 10, "bytes": 1000,
           "result": {"languages": {}, "overall": {},
                      "average": {"languages": 2, "intent_accuracy": 0.9, "slot_f1": 0.8,
                                  "exact_match": 0.75, "tree_exact_match": None}}}
    p = tmp_path / "m.json"
    p.write_text(json.dumps(doc))
    m = report.read_metrics(str(p))
    assert m["exact_match"] == 75.0 and m["intent_acc"] == 90.0 and m["slot_f1"] == 80.0
    r = BenchRecord(name="small", model=doc["model"], target="local")
    other = BenchRecord(name="other", model="/x/other.tflite", target="local")
    report.attach_metrics([r, other], {str(p): m})
    assert r.accuracy["exact_match"] == 75.0 and other.accuracy is None
    (tmp_path / "bad.json").write_text("{\"result\": {}}")
    with pytest.raises(BenchError, match="no result.average.*prado-eval --metrics_out"):
        report.read_metrics(str(tmp_path / "bad.json"))
    with pytest.raises(BenchError, match="cannot read the metrics file"):
        report.read_metrics(str(tmp_path / "missing.json"))


def test_quiet_p50_reads_the_quietest_stretch():
    # A neighbour slows the first 60 invokes to 3x: p50 moves, the quiet p50 does not.
    r = report.BenchRecord(name="m", model="m.tflite", target="local")
    report.fill_timings(r, [300.0] * 60 + [100.0 + (i % 3) for i in range(40)])
    assert r.p50_us == 300.0 and r.quiet_p50_us == 101.0
    report.fill_timings(r, [100.0] * (report.QUIET_MIN_RUNS - 1))
    assert r.quiet_p50_us is None  # too few invokes to split into stretches


def test_model_name():
    assert report.model_name("runs/mtop_base/model.tflite") == "mtop_base"
    assert report.model_name("x/tiny.tflite") == "tiny"


def test_markdown_json_and_plot(tmp_path):
    recs = [rec("small", 1_000, 10.0), rec("ref", 200_000, 2_000.0, reference=True)]
    recs[0].accuracy = {"exact_match": 71.25}
    report.apply_reference(recs)
    md = report.markdown_table(recs).splitlines()
    assert len(md) == 4 and md[0].startswith("| model | target | bytes")
    assert md[2].split("|")[1].strip() == "small" and "200.0x" in md[2] and "71.2" in md[2]
    assert "ref (reference)" in md[3]
    report.write_json(recs, str(tmp_path / "r.json"), {"date": "2026-12-01"})
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["meta"]["date"] == "2026-12-01" and len(doc["records"]) == 2
    assert BenchRecord(**doc["records"][0]) == recs[0]  # a record survives the round trip
    assert report.plot(recs, str(tmp_path / "p.png"))
    data = (tmp_path / "p.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
