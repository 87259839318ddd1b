"""prado_tiny.bench.reference: a tiny config of the mBERT-shaped builder, converted by the
export converter in a subprocess and cached; its shape checked in the flatbuffer."""
import os
import time

import pytest

from prado_tiny.bench.model_stats import model_stats
from prado_tiny.bench.reference import MBERT, ReferenceConfig, reference_tflite
from prado_tiny.export.inspect import check_builtin_int8

# The tiny config test_bench_main.py also uses, in the same per-session cache folder: the
# conversion runs once per test session, in whichever file comes first.
TINY = ReferenceConfig(num_layers=1, hidden=32, heads=4, intermediate=64, vocab_size=400,
                       seq_len=16, num_intents=117, num_slot_tags=151)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "prado_bench_reference_cache")


@pytest.fixture(scope="module")
def tiny_ref(cache):
    lines = []
    path = reference_tflite(TINY, cache, log=lines.append)
    assert os.path.basename(path) == TINY.file_name
    assert not lines or "converting the reference" in lines[0]
    return path


def test_default_config_is_mbert_shaped():
    c = ReferenceConfig()
    assert (c.num_layers, c.hidden, c.heads, c.intermediate, c.vocab_size, c.seq_len) == (
        12, 768, 12, 3072, 119547, 64)
    assert MBERT["vocab_size"] == 119547
    assert c.file_name.startswith("mbert_shaped_L12_H768_A12_I3072_V119547_S64")


def test_tiny_reference_is_int8_builtin(tiny_ref):
    report = check_builtin_int8(tiny_ref)
    assert report.ok, report.violations
    assert report.inputs[0].shape == (1, 16) and report.inputs[0].dtype == "INT32"
    assert sorted(t.shape for t in report.outputs) == [(1, 16, 151), (1, 117)]
    assert report.op_counts.get("GATHER") == 1  # the word embedding lookup


def test_tiny_reference_has_the_transformer_arithmetic(tiny_ref):
    c, s = TINY, model_stats(tiny_ref)
    L, H, Ff, T = c.num_layers, c.hidden, c.intermediate, c.seq_len
    per_layer_fc = T * (4 * H * H + 2 * H * Ff)  # Q, K, V, output; two feed-forward matrices
    heads_fc = H * H + H * c.num_intents + T * H * c.num_slot_tags  # pooler, intent, slots
    assert s.macs_by_op["FULLY_CONNECTED"] == L * per_layer_fc + heads_fc
    assert s.macs_by_op["BATCH_MATMUL"] == L * 2 * T * T * H  # scores and weighted values
    # Every matrix is distinct (no weights shared by the converter): the parameter count is at
    # least the matrices' and the file holds each int8 weight once.
    matrices = c.vocab_size * H + L * (4 * H * H + 2 * H * Ff) + H * H + H * (c.num_intents + c.num_slot_tags)
    assert s.params >= matrices
    assert s.size_bytes >= matrices


def test_cached_reference_is_not_converted_again(tiny_ref, cache):
    mtime = os.path.getmtime(tiny_ref)
    lines = []
    t0 = time.time()
    assert reference_tflite(TINY, cache, log=lines.append) == tiny_ref
    assert time.time() - t0 < 1.0 and not lines and os.path.getmtime(tiny_ref) == mtime


def test_bad_shapes_are_refused_before_converting():
    with pytest.raises(ValueError, match="hidden=30 is not divisible by heads=4"):
        ReferenceConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="at least 1: num_layers"):
        ReferenceConfig(num_layers=0)


def test_failed_conversion_names_the_reference(cache, monkeypatch):
    # A converter that dies (here: the module cannot be imported) is reported with its output.
    monkeypatch.setenv("PYTHONPATH", "/nonexistent")
    monkeypatch.setattr("sys.executable", "/bin/false")
    cfg = ReferenceConfig(num_layers=1, hidden=8, heads=2, intermediate=8, vocab_size=20, seq_len=4)
    with pytest.raises(RuntimeError, match="converting the reference mbert_shaped_L1_H8.* failed"):
        reference_tflite(cfg, cache, log=lambda s: None)
