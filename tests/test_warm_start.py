"""Tests for prado_tiny.compress.warm_start and `prado-train --init_from`: a compressed BiLSTM
started from a trained uncompressed one."""
import json
import os

import numpy as np
import pytest

from conftest import TINY_BILSTM_FLAGS, run_module
from prado_tiny.compress import offline, warm_start as ws
from prado_tiny.models import model_dir as md


def test_fit_additive_codes_reconstructs_better_with_more_codebooks():
    rng = np.random.default_rng(0)
    table = rng.normal(size=(300, 16)).astype(np.float32)
    errs = []
    for m in (1, 2, 4):
        codes, books = offline.fit_additive_codes(table, m, 16)
        assert codes.shape == (300, m) and books.shape == (m, 16, 16)
        assert codes.min() >= 0 and codes.max() < 16
        fit = books[np.arange(m)[None, :], codes].sum(1)
        errs.append(np.linalg.norm(fit - table) / np.linalg.norm(table))
    assert errs[0] > errs[1] > errs[2]


def test_code_embedding_initialize_starts_from_the_given_codes():
    import tensorflow as tf
    from prado_tiny.layers.code_embedding import CodeEmbedding
    emb = CodeEmbedding(vocab_size=30, dim=4, num_codebooks=3, codebook_size=8)
    emb(tf.zeros([1, 1, 1], tf.int32))
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 8, (30, 3))
    books = rng.normal(size=(3, 8, 4)).astype(np.float32)
    emb.initialize(codes, books)
    emb.freeze()
    np.testing.assert_array_equal(emb.codes.numpy(), codes)
    out = emb(tf.constant([[[5, 0]]])).numpy()[0, 0]
    np.testing.assert_allclose(out, books[np.arange(3), codes[5]].sum(0), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="frozen"):
        emb.initialize(codes, books)
    emb2 = CodeEmbedding(vocab_size=30, dim=4, num_codebooks=3, codebook_size=8)
    emb2(tf.zeros([1, 1, 1], tf.int32))
    with pytest.raises(ValueError, match="codes must be in"):
        emb2.initialize(codes + 8, books)
    with pytest.raises(ValueError, match="expected codes"):
        emb2.initialize(codes[:, :2], books)


def test_warm_start_copies_weights_and_fits_the_table(tiny_bilstm_reference):
    ref = tiny_bilstm_reference
    spec = ws.reference_spec(ref)
    codes_spec = json.loads(json.dumps(spec))
    codes_spec["config"].update(embedding="codes", num_codebooks=4, codebook_size=16)
    model = md.build_model(codes_spec, quantize=False)
    md.dummy_input(model, codes_spec)
    fit = ws.warm_start(model, ref, log=lambda m: None)
    reference, _, _, _ = md.load(ref)
    for a, b in zip([w for w in model.weights if "/embedding/" not in w.name],
                    [w for w in reference.weights if "/embedding/" not in w.name]):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # The codes' table is the residual k-means fit of the reference's table.
    model.embedding.freeze()
    table = reference.embedding.embeddings.numpy()
    books = model.embedding.codebooks.numpy().reshape(4, 16, -1)
    rebuilt = books[np.arange(4)[None, :], model.embedding.codes.numpy()].sum(1)
    err = np.linalg.norm(rebuilt[2:] - table[2:]) / np.linalg.norm(table[2:])
    assert abs(err - fit["relative_error"]) < 1e-4 and err < 0.6


def test_reference_and_config_errors(tmp_path, tiny_bilstm_reference):
    with pytest.raises(ws.WarmStartError, match="no such model folder"):
        ws.reference_spec(str(tmp_path / "nope"))
    os.makedirs(tmp_path / "empty")
    with pytest.raises(ws.WarmStartError, match="no model.json"):
        ws.reference_spec(str(tmp_path / "empty"))
    spec = ws.reference_spec(tiny_bilstm_reference)
    other = dict(spec["config"], state_dim=64, embedding_dim=8)
    with pytest.raises(ws.WarmStartError, match="embedding_dim: 32 in the reference, 8 here; "
                                                "state_dim: 16 in the reference, 64 here"):
        ws.check_config(spec, other)


def test_prado_train_init_from_end_to_end(tmp_path, tiny_bilstm_reference):
    ref = tiny_bilstm_reference
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'warm'}", *TINY_BILSTM_FLAGS,
                     "--epochs=3", "--embedding=codes", "--num_codebooks=2", "--codebook_size=8",
                     f"--init_from={ref}")
    assert "warm start from" in out and "2x8 codes by residual k-means" in out
    spec = md.read_spec(str(tmp_path / "warm"))
    assert spec["data"]["init_from"] == os.path.abspath(ref)
    # Same pieces as the reference: its text encoder is copied, not learned again.
    for name in os.listdir(os.path.join(ref, "text_encoder")):
        with open(os.path.join(ref, "text_encoder", name), "rb") as a, \
                open(tmp_path / "warm" / "text_encoder" / name, "rb") as b:
            assert a.read() == b.read()
    warm = json.load(open(tmp_path / "warm" / "history.json"))["best_epoch"]["dev_exact_match"]
    # The task-aware codes must beat the same codes fitted offline to the reference's table.
    from prado_tiny.compress import report
    from prado_tiny.data.registry import read_dataset
    rows = report.measure(ref, list(read_dataset("demo", None, "dev", ["en"])),
                          sweep=(("additive_codes", dict(num_codebooks=2, codebook_size=8)),),
                          log=lambda m: None)
    assert warm > rows[1].metrics["exact_match"] + 0.03, (warm, rows[1].metrics)


def test_prado_train_init_from_errors(tmp_path, tiny_bilstm_reference):
    ref = tiny_bilstm_reference
    flags = [f for f in TINY_BILSTM_FLAGS if f != "--model=bilstm"]
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'a'}", *flags,
                     "--model=pqrnn", f"--init_from={ref}", ok=False)
    assert "needs --model=bilstm, not pqrnn" in out
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'b'}", *TINY_BILSTM_FLAGS,
                     "--embedding=codes", "--state_dim=8", f"--init_from={ref}", ok=False)
    assert "state_dim: 16 in the reference, 8 here" in out
    out = run_module("prado_tiny.train_main", f"--model_dir={tmp_path / 'c'}", *TINY_BILSTM_FLAGS,
                     "--embedding=codes", f"--init_from={tmp_path / 'missing'}", ok=False)
    assert "no such model folder" in out


def test_uncompressed_model_continues_from_every_weight(tiny_bilstm_reference):
    ref = tiny_bilstm_reference
    spec = ws.reference_spec(ref)
    model = md.build_model(spec, quantize=False)
    md.dummy_input(model, spec)
    ws.warm_start(model, ref, log=lambda m: None)
    reference, _, _, _ = md.load(ref)
    assert len(model.weights) == len(reference.weights)
    for a, b in zip(model.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
