"""Tests for prado_tiny.models.bilstm (the embedding baseline) and its command-line path:
prado-train --model=bilstm -> prado-export (int8, builtin ops) -> Predictor."""
import json
import os

import numpy as np
import pytest

from prado_tiny.export.inspect import check_builtin_int8
from prado_tiny.export.metadata import read_metadata
from prado_tiny.layers.fake_quant import set_quantize
from prado_tiny.models.bilstm import BiLSTMConfig, BiLSTMTagger

from conftest import run_module

T = 8


def config(**kwargs):
    args = dict(num_intents=5, num_slot_tags=7, vocab_size=30, max_seq_len=T, embedding_dim=8,
                state_dim=6)
    args.update(kwargs)
    return BiLSTMConfig(**args)


def ids():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, (3, T, 2)).astype(np.int32)
    x[:, :, 1] *= rng.integers(0, 2, (3, T))  # some tokens of one piece
    x[1, 5:] = 0  # example 1 has 5 tokens
    x[2, 2:] = 0
    return x


def test_config_validation_and_round_trip():
    for bad in (dict(vocab_size=2), dict(state_dim=0), dict(intent_mode="x")):
        with pytest.raises(ValueError):
            config(**bad)
    c = config()
    assert BiLSTMConfig.from_dict(json.loads(c.to_json())) == c
    with pytest.raises(ValueError, match="unknown BiLSTM config keys"):
        BiLSTMConfig.from_dict(dict(json.loads(c.to_json()), zoneout=0.1))
    model = BiLSTMTagger(c, quantize=True, name="b")
    clone = BiLSTMTagger.from_config(model.get_config())
    assert clone.config == c and clone.quantize and clone.name == "b"


def test_mask_from_ids_equals_given_mask_and_trimming_changes_nothing():
    x = ids()
    model = BiLSTMTagger(config(num_layers=2))
    mask = (x[..., 0] > 0).astype(np.int32)
    a = model({"piece_ids": x})
    b = model({"piece_ids": x, "token_mask": mask})
    np.testing.assert_allclose(a["intent"].numpy(), b["intent"].numpy(), rtol=1e-5, atol=1e-6)
    c = model({"piece_ids": x[1:, :5], "token_mask": mask[1:, :5]})
    np.testing.assert_allclose(c["intent"].numpy(), a["intent"].numpy()[1:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c["slots"].numpy(), a["slots"].numpy()[1:, :5], rtol=1e-4, atol=1e-5)


def test_set_quantize_reaches_the_lstm():
    model = BiLSTMTagger(config())
    model({"piece_ids": ids()})
    set_quantize(model, True)
    assert model.lstms[0].quantize and model.lstms[0].sum_forward.quantize
    assert model.embedding_quant.quantize and model.slot_head.quantize


TINY = ["--model=bilstm", "--dataset=demo", "--languages=en,de", "--wordpiece_vocab_size=300",
        "--embedding_dim=32", "--state_dim=16", "--max_seq_len=16", "--batch_size=32",
        "--epochs=4", "--qat_epochs=1", "--learning_rate=0.01", "--warmup_steps=2",
        "--progress=false"]




def test_cli_train_export_predict(tmp_path, tiny_bilstm_reference):
    """conftest's tiny BiLSTM (prado-train --model=bilstm, 12 demo epochs, QAT in the last)."""
    model_dir = tiny_bilstm_reference
    spec = json.load(open(os.path.join(model_dir, "model.json"), encoding="utf-8"))
    assert spec["model_type"] == "bilstm" and spec["input"] == "piece_ids"
    assert spec["config"]["vocab_size"] > 100  # the learned WordPiece vocabulary + 2
    best = json.load(open(os.path.join(model_dir, "history.json"), encoding="utf-8"))["best_epoch"]
    assert best["dev_intent_accuracy"] > 0.8 and best["qat"] is True, best
    tflite = str(tmp_path / "m.tflite")
    out = run_module("prado_tiny.export_main", f"--model_dir={model_dir}", f"--output={tflite}",
              "--calibration_examples=64", "--parity_examples=200",
              # 200 examples of a tiny model: one flipped example is 0.5 points.
              "--max_exact_match_drop=3")
    assert "int8 builtin ops only: yes" in out
    report = check_builtin_int8(tflite)
    assert report.ok and "GATHER" in report.op_counts, report.violations
    parity = json.load(open(tflite + ".json", encoding="utf-8"))["parity"]
    assert parity["exact_match_drop"] <= 3.0 and parity["intent_agreement"] >= 0.97, parity
    from prado_tiny.predictor import Predictor
    p = Predictor(tflite)  # loads with the stock interpreter and its default delegate
    assert read_metadata(tflite)["input"] == "piece_ids"
    r = p.predict("wake me up at 7 am")
    assert r.intent in read_metadata(tflite)["labels"]["intents"]
    assert p.predict("Weck mich um 7 Uhr").intent
    # Without a WordPiece vocabulary a BiLSTM cannot embed anything: a clear usage error.
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'x'}", *TINY,
              "--wordpiece_vocab_size=0", ok=False)
    assert "needs --wordpiece_vocab_size > 0" in out


def test_codes_embedding_config_and_model():
    for bad in (dict(embedding="x"), dict(embedding="codes", codebook_size=1),
                dict(embedding="codes", code_temperature=0.0)):
        with pytest.raises(ValueError):
            config(**bad)
    model = BiLSTMTagger(config(embedding="codes", num_codebooks=4, codebook_size=4))
    out = model({"piece_ids": ids()})
    assert out["slots"].shape == (3, T, 7)
    assert model.embedding.code_logits.shape == (30, 4, 4)
    set_quantize(model, True)  # QAT starts: the codes freeze
    assert int(model.embedding.frozen.numpy()) == 1


def test_cli_compressed_embedding_trains_exports_and_is_smaller(tmp_path, tiny_bilstm_codes):
    """conftest's task-aware codes (prado-train --embedding=codes --init_from=the reference)."""
    model_dir = tiny_bilstm_codes[0]
    spec = json.load(open(os.path.join(model_dir, "model.json"), encoding="utf-8"))
    assert spec["config"]["embedding"] == "codes" and spec["config"]["num_codebooks"] == 4
    tflite = str(tmp_path / "c.tflite")
    run_module("prado_tiny.export_main", f"--model_dir={model_dir}", f"--output={tflite}",
               "--calibration_examples=32", "--parity_examples=200", "--max_exact_match_drop=3")
    report = check_builtin_int8(tflite)
    assert report.ok and "FLOOR_MOD" in report.op_counts, report.violations
    from ai_edge_litert.interpreter import Interpreter
    vocab = spec["config"]["vocab_size"]
    shapes = {tuple(d["shape"]): d["dtype"] for d in Interpreter(tflite).get_tensor_details()}
    assert shapes.get((vocab, 2)) == np.uint8 and (vocab, 32) not in shapes  # codes, no table
    from prado_tiny.predictor import Predictor
    assert Predictor(tflite).predict("wake me up at 7 am").intent
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'x'}", *TINY,
                     "--model=transformer", "--embedding=codes", ok=False)
    assert "needs --model=bilstm" in out
