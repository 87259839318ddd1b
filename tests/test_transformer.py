"""Tests for prado_tiny.models.transformer (the transformer baseline) and its command-line path:
prado-train --model=transformer -> prado-export (int8, builtin ops, parity) -> Predictor."""
import json
import os

import numpy as np
import pytest

from prado_tiny.export.inspect import check_builtin_int8
from prado_tiny.export.metadata import read_metadata
from prado_tiny.models.transformer import TransformerConfig, TransformerTagger

from conftest import run_module

T = 8


def config(**kwargs):
    args = dict(num_intents=5, num_slot_tags=7, vocab_size=30, max_seq_len=T, embedding_dim=8,
                num_heads=2, ff_dim=16)
    args.update(kwargs)
    return TransformerConfig(**args)


def test_config_validation_and_round_trip():
    for bad in (dict(embedding_dim=6, num_heads=4), dict(vocab_size=1), dict(ff_dim=0)):
        with pytest.raises(ValueError):
            config(**bad)
    c = config()
    assert TransformerConfig.from_dict(json.loads(c.to_json())) == c
    model = TransformerTagger(c, quantize=True, name="t")
    clone = TransformerTagger.from_config(model.get_config())
    assert clone.config == c and clone.quantize and clone.name == "t"


def test_mask_from_ids_and_trimmed_batch():
    rng = np.random.default_rng(0)
    x = rng.integers(2, 30, (3, T, 2)).astype(np.int32)
    x[1, 5:] = 0
    x[2, 2:] = 0
    model = TransformerTagger(config())
    mask = (x[..., 0] > 0).astype(np.int32)
    a = model({"piece_ids": x})
    b = model({"piece_ids": x[1:, :5], "token_mask": mask[1:, :5]})
    np.testing.assert_allclose(b["intent"].numpy(), a["intent"].numpy()[1:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(b["slots"].numpy(), a["slots"].numpy()[1:, :5], rtol=1e-4, atol=1e-5)




def test_cli_train_export_predict(tmp_path):
    model_dir = str(tmp_path / "m")
    out = run_module("prado_tiny.train_main", f"--model_dir={model_dir}", "--model=transformer",
              "--dataset=demo", "--languages=en,hi", "--wordpiece_vocab_size=300",
              "--embedding_dim=32", "--num_heads=2", "--ff_dim=64", "--num_layers=1",
              "--max_seq_len=16", "--batch_size=32", "--epochs=4", "--qat_epochs=1",
              "--learning_rate=0.005", "--warmup_steps=10", "--progress=false")
    done = json.loads(out.split("prado-train: done ", 1)[1].splitlines()[0])
    assert done["dev_intent_accuracy"] > 0.8, done
    tflite = os.path.join(model_dir, "m.tflite")
    out = run_module("prado_tiny.export_main", f"--model_dir={model_dir}", f"--output={tflite}",
              "--calibration_examples=64", "--parity_examples=200", "--max_exact_match_drop=3")
    report = check_builtin_int8(tflite)
    assert report.ok and "BATCH_MATMUL" in report.op_counts and "SOFTMAX" in report.op_counts
    parity = json.load(open(tflite + ".json", encoding="utf-8"))["parity"]
    assert parity["exact_match_drop"] <= 3.0 and parity["intent_agreement"] >= 0.97, parity
    from prado_tiny.predictor import Predictor
    r = Predictor(tflite).predict("wake me up at 7 am")
    assert r.intent in read_metadata(tflite)["labels"]["intents"]
