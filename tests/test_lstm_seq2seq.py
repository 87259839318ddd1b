"""Tests for prado_tiny.models.lstm_seq2seq (the LSTM seq2seq baseline of pQRNN-MAtt): config,
the step path against teacher forcing (bridge, attention and pointers over padded sources), and
the user commands on the demo data: prado-train learns parses, prado-eval scores the folder with
beam search, prado-export and QAT are refused with a clear message."""
import doctest
import json
import os

import numpy as np
import pytest
import tensorflow as tf

import prado_tiny.models.lstm_seq2seq as lstm_seq2seq
from conftest import run_module
from prado_tiny.data import demo
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.wordpiece import learn_vocabulary
from prado_tiny.models.lstm_seq2seq import LSTMSeq2Seq, LSTMSeq2SeqConfig
from prado_tiny.models.pqrnn_matt import KerasStepper, beam_search, greedy_decode

S, T = 10, 12  # source tokens, target positions
TEXTS = [["set", "an", "alarm", "for", "7", "am"], ["hi"],
         ["remind", "me", "to", "call", "mom", "at", "noon", "please"]]


def config(**kwargs):
    args = dict(output_vocab_size=20 + S, pointer_offset=20, vocab_size=60, max_seq_len=S,
                embedding_dim=8, state_dim=8, num_layers=2, hidden_dim=16, num_decoder_layers=2,
                max_target_len=T)
    args.update(kwargs)
    return LSTMSeq2SeqConfig(**args)


@pytest.fixture(scope="module")
def pieces():
    wp = learn_vocabulary(TEXTS, 58)
    ids = TextEncoder(max_tokens=S, max_chars=12, max_pieces=3, wordpiece=wp).encode_piece_ids_batch(TEXTS)
    return ids.astype(np.int32), (ids[..., 0] != 0).astype(np.int32)


def randomize(model, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        w.assign(rng.normal(0, scale, w.shape).astype(np.float32))


def test_docstring_examples():
    assert doctest.testmod(lstm_seq2seq, extraglobs={"tf": tf}).failed == 0


def test_config_round_trip_and_validation():
    c = config()
    assert LSTMSeq2SeqConfig.from_dict(json.loads(c.to_json())) == c
    model = LSTMSeq2Seq(c)
    assert LSTMSeq2Seq.from_config(model.get_config()).config == c
    with pytest.raises(ValueError, match="pointer_offset"):
        config(pointer_offset=19)
    with pytest.raises(ValueError, match="vocab_size"):
        config(vocab_size=2)
    with pytest.raises(ValueError, match="hidden_dim"):
        config(hidden_dim=0)
    with pytest.raises(ValueError, match="decoder_dropout"):
        config(decoder_dropout=1.0)
    with pytest.raises(ValueError, match="float model"):
        LSTMSeq2Seq(c, quantize=True)


def test_step_path_equals_teacher_forcing(pieces):
    ids, mask = pieces
    model = LSTMSeq2Seq(config()).ensure_built()
    randomize(model, seed=3)
    dec = np.random.default_rng(1).integers(1, 20 + S, (3, T)).astype(np.int32)
    full = model({"piece_ids": ids, "token_mask": mask, "decoder_inputs": dec}).numpy()
    assert full.shape == (3, T, 20 + S)
    # Pointers beyond a source's length are penalized; padding never changes a real score.
    assert full[1, :, 20 + 1:].max() < full[1, :, 20:21].min()
    stepper = KerasStepper(model)
    cache, state, num_source = stepper.start({"piece_ids": ids, "token_mask": mask})
    np.testing.assert_array_equal(num_source, mask.sum(1))
    # The first state comes from the encoder (the bridge), not zeros.
    assert np.abs(state["h"][0]).max() > 0.01
    for t in range(T):
        logits, state = stepper.step(dec[:, t], state, cache)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-4)
    # A batch cut to its longest source (as training batches are) gives the same logits.
    longest = int(mask.sum(1).max())
    assert longest < S
    again = model({"piece_ids": ids[:, :longest], "decoder_inputs": dec}).numpy()
    np.testing.assert_allclose(again, full, rtol=1e-4, atol=1e-4)


def test_searches_run_on_the_baseline(pieces):
    ids, mask = pieces
    model = LSTMSeq2Seq(config(num_decoder_layers=1)).ensure_built()
    randomize(model, seed=4)
    greedy = greedy_decode(model, {"piece_ids": ids, "token_mask": mask}, max_len=6)
    beams = beam_search(model, {"piece_ids": ids, "token_mask": mask}, beam_width=3, max_len=6,
                        constrain=False)
    assert len(greedy) == len(beams) == 3
    assert all(1 <= len(g) <= 6 for g in greedy)


# -- the user commands ----------------------------------------------------------------------

TINY = ["--model=lstm_seq2seq", "--dataset=demo", "--languages=en,th", "--max_seq_len=32",
        "--wordpiece_vocab_size=300", "--embedding_dim=32", "--state_dim=32", "--num_layers=1",
        "--decoder_dim=64", "--num_decoder_layers=1", "--max_target_len=48", "--batch_size=32",
        "--epochs=8", "--qat_epochs=0", "--progress=false", "--learning_rate=0.01",
        "--warmup_steps=5", "--dropout=0", "--decoder_dropout=0", "--label_smoothing=0.05",
        "--beam_width=3", "--checkpoint_secs=0"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("lstm_seq2seq") / "model")
    out = run_module("prado_tiny.train_main", f"--model_dir={model_dir}", *TINY)
    return model_dir, out


def test_train_learns_demo_parses(trained):
    model_dir, out = trained
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["model_type"] == "lstm_seq2seq" and spec["input"] == "piece_ids"
    assert spec["config"]["vocab_size"] > 100 and spec["config"]["hidden_dim"] == 64
    done = json.loads([x for x in out.splitlines() if x.startswith("prado-train: done ")][0]
                      [len("prado-train: done "):])
    # About 0.6 after 8 epochs (35 s); untrained it is 0.
    assert done["dev_tree_exact_match"] > 0.3, done


def test_eval_scores_the_folder_with_beam_search(trained, tmp_path):
    model_dir, _ = trained
    preds, metrics = str(tmp_path / "p.jsonl"), str(tmp_path / "m.json")
    out = run_module("prado_tiny.eval_main", f"--model={model_dir}", "--dataset=demo",
                     "--split=dev", "--languages=en", f"--predictions_out={preds}",
                     f"--metrics_out={metrics}")
    assert "tree exact match" in out.lower(), out[-2000:]
    with open(preds, encoding="utf-8") as f:
        lines = [json.loads(x) for x in f]
    assert len(lines) == len(list(demo.read(split="dev", languages=["en"])))
    assert all("parse" in x for x in lines)
    with open(metrics, encoding="utf-8") as f:
        m = json.load(f)
    assert m["result"]["average"]["tree_exact_match"] > 0.3


def test_export_and_qat_are_refused_with_a_reason(trained, tmp_path):
    model_dir, _ = trained
    out = run_module("prado_tiny.export_main", f"--model_dir={model_dir}",
                     f"--output={tmp_path / 'x.tflite'}", ok=False)
    assert "float reference that is not exported" in out
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'q'}",
                     *[a for a in TINY if not a.startswith("--qat_epochs")], "--qat_epochs=2",
                     ok=False)
    assert "--qat_epochs=0" in out
