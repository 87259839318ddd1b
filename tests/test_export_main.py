"""prado-export on a tiny trained demo model (the `tiny_export` fixture in conftest.py), and the
Predictor on its output."""
import json
import os
import subprocess
import sys

import pytest

from prado_tiny.export.inspect import check_builtin_int8
from prado_tiny.export.metadata import read_metadata
from prado_tiny.predictor import Predictor

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")


@pytest.fixture(scope="module")
def predictor(tiny_export):
    return Predictor(tiny_export[1])


def test_export_writes_an_int8_builtin_model(tiny_export):
    _, path, stdout = tiny_export
    assert os.path.isfile(path) and os.path.getsize(path) > 0
    assert "int8 builtin ops only: yes" in stdout, stdout
    assert "parity on 100 development examples" in stdout
    report = check_builtin_int8(path)
    assert report.ok, report.violations


def test_metadata_holds_labels_and_text_encoder(tiny_export):
    model_dir, path, _ = tiny_export
    doc = read_metadata(path)
    with open(os.path.join(model_dir, "label_vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    assert doc["labels"]["intents"] == vocab["intents"]
    assert doc["labels"]["slot_tags"] == vocab["slot_tags"]
    assert doc["text_encoder"]["max_tokens"] == 16
    assert doc["input"] == "subwords" and doc["intent_mode"] == "joint"


def test_report_json_has_parity(tiny_export):
    _, path, _ = tiny_export
    with open(path + ".json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["builtin_int8"] is True
    assert report["bytes"] == os.path.getsize(path)
    assert report["calibration_examples"] == 64
    parity = report["parity"]
    assert parity["examples"] == 100
    assert isinstance(parity["exact_match_drop"], float)
    assert 0.0 <= parity["intent_agreement"] <= 1.0


def test_predict_english(tiny_export, predictor):
    text = "wake me up at 7 am"
    r = predictor.predict(text)
    labels = read_metadata(tiny_export[1])["labels"]["intents"]
    assert r.intent in labels and r.intent != "<unk>"
    assert 0.0 < r.intent_score <= 1.0
    assert r.tokens == ["wake", "me", "up", "at", "7", "am"]
    assert len(r.tags) == len(r.tokens)
    assert not r.truncated
    for s in r.slots:
        assert 0 <= s["start"] < s["end"] <= len(text)
        assert text[s["start"]:s["end"]] == s["text"]
    for (start, end), tok in zip(r.offsets, r.tokens):
        assert text[start:end] == tok


@pytest.mark.parametrize("text", ["", "   "])
def test_predict_empty_raises(predictor, text):
    with pytest.raises(ValueError):
        predictor.predict(text)


def test_predict_thai(predictor):
    text = "ตั้งนาฬิกาปลุกตอนเจ็ดโมงเช้า"
    r = predictor.predict(text)
    assert r.intent and r.intent != "<unk>"
    assert r.tokens and len(r.tags) == len(r.tokens)
    for s in r.slots:
        assert text[s["start"]:s["end"]] == s["text"]


def test_predict_long_text_is_truncated(predictor):
    text = " ".join(["alarm"] * 5000)
    r = predictor.predict(text)
    assert r.truncated is True
    assert len(r.tokens) == 5000 and len(r.tags) == 5000
    assert all(t == "O" for t in r.tags[16:])
    assert r.intent and r.intent != "<unk>"


def test_parity_gate_fails_loudly_and_keeps_the_file(tiny_export, tmp_path):
    """Also --tensor_report, written before the gate fails (when it is wanted; one export run
    for both keeps the suite fast)."""
    model_dir, _, _ = tiny_export
    out = tmp_path / "gated.tflite"
    tensors = tmp_path / "tensors.json"
    # No model gains 100 exact-match points by quantization: the gate must trip.
    r = subprocess.run([sys.executable, "-m", "prado_tiny.export_main", f"--model_dir={model_dir}",
                        f"--output={out}", "--calibration_examples=64", "--parity_examples=50",
                        "--max_exact_match_drop=-100", f"--tensor_report={tensors}"],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr[-2000:]
    assert "FAILED parity" in r.stderr and "--max_exact_match_drop=-100" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert out.exists()  # kept for inspection, with its report
    with open(str(out) + ".json", encoding="utf-8") as f:
        report = json.load(f)
    assert report["parity_ok"] is False and report["max_exact_match_drop"] == -100
    with open(tensors, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["graph"] == "model" and doc["measured_on"] == "parity examples"
    rows = doc["tensors"]
    assert rows and all(t["scale"] > 0 and t["relative_rms"] >= 0 for t in rows)
    assert len({t["name"] for t in rows}) == len(rows)
    assert "rel. RMS" in r.stdout and f"written to {tensors}" in r.stdout, r.stdout[-2000:]


def test_exported_model_is_lean(tiny_export):
    """Per-tensor weight scales (as QAT trained them) and no internal tensor names."""
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=tiny_export[1])
    io = {d["index"] for d in it.get_input_details() + it.get_output_details()}
    details = it.get_tensor_details()
    assert all(d["name"] == "" for d in details if d["index"] not in io)
    weights = [d for d in details if d["dtype"].__name__ == "int8" and len(d["shape"]) == 2
               and d["quantization_parameters"]["scales"].size > 0 and d["index"] not in io]
    assert weights, "no int8 weight matrices found"
    assert all(d["quantization_parameters"]["scales"].size == 1 for d in weights)


def test_export_of_missing_model_dir_fails(tmp_path):
    out = tmp_path / "m.tflite"
    r = subprocess.run([sys.executable, "-m", "prado_tiny.export_main",
                        f"--model_dir={tmp_path / 'nope'}", f"--output={out}"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode != 0
    assert "not a prado-train model folder" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not out.exists()
