"""prado-eval on a tiny trained demo model, as a .tflite and as its model folder (the
`tiny_export` fixture in conftest.py)."""
import json
import os
import subprocess
import sys

import pytest

from prado_tiny.data import demo

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")


def run_eval(model, out_dir):
    preds, metrics = os.path.join(out_dir, "p.jsonl"), os.path.join(out_dir, "m.json")
    r = subprocess.run([sys.executable, "-m", "prado_tiny.eval_main", f"--model={model}",
                        "--dataset=demo", "--split=dev", "--languages=en,th",
                        f"--predictions_out={preds}", f"--metrics_out={metrics}"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    with open(preds, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    with open(metrics, encoding="utf-8") as f:
        doc = json.load(f)
    return r.stdout, lines, doc


@pytest.fixture(scope="module")
def evaluations(tiny_export, tmp_path_factory):
    model_dir, tflite, _ = tiny_export
    out = {}
    for kind, model in (("tflite", tflite), ("folder", model_dir)):
        d = tmp_path_factory.mktemp(f"eval_{kind}")
        out[kind] = run_eval(model, str(d))
    return out


@pytest.fixture(scope="module")
def dev_examples():
    return list(demo.read(split="dev", languages=["en", "th"]))


@pytest.mark.parametrize("kind", ["tflite", "folder"])
def test_table_has_a_row_per_language(evaluations, dev_examples, kind):
    stdout = evaluations[kind][0]
    assert ("int8 .tflite" if kind == "tflite" else "model folder") in stdout
    rows = {line.split()[0]: line.split() for line in stdout.splitlines() if line.strip()}
    counts = {lang: sum(e.language == lang for e in dev_examples) for lang in ("en", "th")}
    for lang in ("en", "th"):
        assert lang in rows, stdout
        assert rows[lang][1] == str(counts[lang])
    assert "overall" in rows and "average" in rows
    assert "de" not in rows and "hi" not in rows


@pytest.mark.parametrize("kind", ["tflite", "folder"])
def test_predictions_one_line_per_example_in_order(evaluations, dev_examples, kind):
    lines = evaluations[kind][1]
    assert len(lines) == len(dev_examples) > 0
    assert [x["utterance"] for x in lines] == [e.utterance for e in dev_examples]
    assert [x["language"] for x in lines] == [e.language for e in dev_examples]
    for x, e in zip(lines, dev_examples):
        assert x["tokens"] == list(e.tokens)
        assert isinstance(x["intent"], str) and x["intent"] and x["intent"] != "<unk>"
        assert len(x["slots"]) == len(x["tokens"])
        assert all(isinstance(t, str) for t in x["slots"])


@pytest.mark.parametrize("kind", ["tflite", "folder"])
def test_metrics_json(evaluations, dev_examples, kind):
    doc = evaluations[kind][2]
    langs = doc["result"]["languages"]
    assert set(langs) == {"en", "th"}
    assert doc["examples"] == len(dev_examples)
    assert langs["en"]["examples"] + langs["th"]["examples"] == len(dev_examples)
    for lang in ("en", "th"):
        assert 0.0 <= langs[lang]["intent_accuracy"] <= 1.0
    assert ("bytes" in doc) == (kind == "tflite")


def test_tflite_and_folder_agree_on_intents(evaluations):
    a, b = evaluations["tflite"][1], evaluations["folder"][1]
    same = sum(x["intent"] == y["intent"] for x, y in zip(a, b)) / len(a)
    assert same >= 0.9, same


def test_missing_model_fails_clearly(tmp_path):
    r = subprocess.run([sys.executable, "-m", "prado_tiny.eval_main", "--model=/nonexistent",
                        "--dataset=demo", "--split=dev"],
                       capture_output=True, text=True, env=ENV, timeout=120)
    assert r.returncode != 0
    assert "/nonexistent: not found" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_max_examples_scores_the_first_of_each_language(tiny_export, dev_examples, tmp_path):
    tflite = tiny_export[1]
    preds, metrics = tmp_path / "p.jsonl", tmp_path / "m.json"
    r = subprocess.run([sys.executable, "-m", "prado_tiny.eval_main", f"--model={tflite}",
                        "--dataset=demo", "--split=dev", "--languages=en,th", "--max_examples=7",
                        f"--predictions_out={preds}", f"--metrics_out={metrics}"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr[-3000:]
    assert "14 examples (the first 7 of each language)" in r.stdout
    # The first 7 of each language, kept in input order (not grouped by language).
    seen, want = {"en": 0, "th": 0}, []
    for e in dev_examples:
        seen[e.language] += 1
        if seen[e.language] <= 7:
            want.append(e)
    assert len(want) == 14
    lines = [json.loads(x) for x in preds.read_text(encoding="utf-8").splitlines()]
    assert [x["utterance"] for x in lines] == [e.utterance for e in want]
    doc = json.loads(metrics.read_text(encoding="utf-8"))
    assert doc["examples"] == 14 and doc["max_examples_per_language"] == 7
    r = subprocess.run([sys.executable, "-m", "prado_tiny.eval_main", f"--model={tflite}",
                        "--dataset=demo", "--max_examples=-1"],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode != 0 and "--max_examples=-1: must be 0 (all) or positive" in r.stderr


def test_nofake_quant_scores_the_qat_weights_in_float(tiny_export, tmp_path):
    """The same QAT folder, with and without its fake quantization: the flag reaches the model
    (no FakeQuant left on) and is recorded in the metrics."""
    from prado_tiny.layers.fake_quant import FakeQuant
    from prado_tiny.models import model_dir as md
    model_dir = tiny_export[0]

    def fake_quants(model):
        return [m for m in model.submodules if isinstance(m, FakeQuant)]

    on = fake_quants(md.load(model_dir)[0])
    assert on and all(m.quantize for m in on)
    off = fake_quants(md.load(model_dir, quantize=False)[0])
    assert not any(m.quantize for m in off)
    docs = {}
    for flag in ("--fake_quant", "--nofake_quant"):
        metrics = tmp_path / f"{flag}.json"
        r = subprocess.run([sys.executable, "-m", "prado_tiny.eval_main", f"--model={model_dir}",
                            "--dataset=demo", "--split=dev", "--max_examples=5", flag,
                            f"--metrics_out={metrics}"],
                           capture_output=True, text=True, env=ENV, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr[-3000:]
        assert ("QAT weights in float" in r.stdout) == (flag == "--nofake_quant"), r.stdout
        docs[flag] = json.loads(metrics.read_text(encoding="utf-8"))
    assert docs["--fake_quant"]["fake_quant"] is True and docs["--nofake_quant"]["fake_quant"] is False
