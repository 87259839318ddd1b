"""Tests for prado_tiny.layers.ternary_projection: NumPy, TF and TFLite features bit for bit."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prado_tiny.layers import ternary_projection as TP

REPO = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent

SPECIAL = ["\U0001F44D", "\U0001F3FD", "\u200d", "\U0001F468", "\ufe0f", "e", "\u0301", "\u0915",
           "\u094d", "\u0e15", "\u0e49", "\u5929", "\U0002070E", "\U0001D518", "#", "\ufffd",
           "\U0010FFFF", "a"]
token_texts = st.one_of(st.text(max_size=40), st.text(st.sampled_from(SPECIAL), max_size=12),
                        st.sampled_from(["", "a", "the", "playing"]))


@st.composite
def token_tensors(draw, batch=2, tokens=5, chars=10):
    """int32 [batch, tokens, chars]: more tokens than fit are dropped, long tokens cut at
    `chars` (a full row), an empty text is an all-padding token."""
    out = np.zeros((batch, tokens, chars), np.int32)
    for b in range(batch):
        for t, text in enumerate(draw(st.lists(token_texts, max_size=tokens + 2))[:tokens]):
            row = [ord(c) for c in text][:chars]
            out[b, t, :len(row)] = row
    return out


raw_int32 = st.lists(st.integers(-(2**31), 2**31 - 1) | st.just(0), min_size=2 * 3 * 6,
                     max_size=2 * 3 * 6).map(lambda v: np.array(v, np.int32).reshape(2, 3, 6))


@settings(max_examples=60, deadline=None)
@given(st.one_of(token_tensors(), raw_int32), st.sampled_from([1, 12, 13, 100, 512]),
       st.integers(0, 2**40))
def test_numpy_paths_agree(x, f, seed):
    feats = TP.ternary_features_np(x, f, seed)
    assert feats.shape == x.shape[:-1] + (f,)
    assert set(np.unique(feats)) <= {-1.0, 0.0, 1.0}
    # The layer's own computation on NumPy over the padded rows.
    ref = TP._values(TP.NP, x.reshape(-1, x.shape[-1]), f, seed, x.shape[-1]).reshape(feats.shape)
    assert np.array_equal(feats, ref)
    cached = TP.TernaryFeaturizer(f, seed)
    assert np.array_equal(cached.features(x), feats) and np.array_equal(cached.features(x), feats)
    empty = ~(x > 0).any(axis=-1)
    assert not feats[empty].any()


def test_value_distribution_and_independence():
    rng = np.random.default_rng(0)
    x = rng.integers(97, 123, size=(3000, 8)).astype(np.int32)
    feats = TP.ternary_features_np(x, 256)
    fractions = [np.mean(feats == v) for v in (-1, 0, 1)]
    assert abs(fractions[0] - 0.25) < 0.01 and abs(fractions[1] - 0.5) < 0.01
    assert abs(fractions[2] - 0.25) < 0.01
    corr = np.corrcoef(feats.T)
    off = corr[~np.eye(len(corr), dtype=bool)]
    assert np.abs(off).max() < 0.1  # features are pairwise uncorrelated across tokens
    # Distinct tokens get (nearly) orthogonal features.
    dots = feats[:200] @ feats[:200].T / 128.0
    assert np.abs(dots[~np.eye(200, dtype=bool)]).max() < 0.45  # sd 0.088 per pair


def test_padding_width_and_seed():
    word = [ord(c) for c in "weather"]
    a = np.zeros((1, 7), np.int32)
    b = np.zeros((1, 30), np.int32)
    a[0], b[0, :7] = word, word
    assert np.array_equal(TP.ternary_features_np(a, 64), TP.ternary_features_np(b, 64))
    assert not np.array_equal(TP.ternary_features_np(a, 64, seed=1), TP.ternary_features_np(a, 64))
    # The first F features do not depend on how many are asked for.
    assert np.array_equal(TP.ternary_features_np(a, 4096)[:, :100], TP.ternary_features_np(a, 100))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        TP.ternary_features_np(np.zeros((1, 3), np.int32), 0)
    with pytest.raises(TypeError):
        TP.ternary_features_np(np.zeros((1, 3), np.float64), 8)


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf
    return tf


@settings(max_examples=20, deadline=None)
@given(st.one_of(token_tensors(), raw_int32), st.sampled_from([5, 24, 4096]))
def test_layer_matches_numpy(tf, x, f):
    y = TP.TernaryProjection(num_features=f, seed=4)(tf.constant(x)).numpy()
    assert y.dtype == np.float32 and np.array_equal(y, TP.ternary_features_np(x, f, 4))
    yi = TP.TernaryProjection(num_features=f, seed=4, int_output=True)(tf.constant(x)).numpy()
    assert yi.dtype == np.int32 and np.array_equal(yi, y.astype(np.int32))


def test_layer_config_roundtrip(tf):
    layer = TP.TernaryProjection(num_features=33, seed=2, int_output=True, name="t")
    config = layer.get_config()
    assert (config["num_features"], config["seed"], config["int_output"]) == (33, 2, True)
    clone = TP.TernaryProjection.from_config(config)
    x = tf.constant([[[104, 105, 0]]])
    assert np.array_equal(clone(x).numpy(), layer(x).numpy())
    assert layer.compute_output_shape((None, 4, 9)) == (None, 4, 33)


def _run(code: str, timeout: int = 240) -> str:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


def test_same_features_in_a_fresh_process():
    x = np.array([[[ord(c) for c in "alarm"] + [0] * 3, [0x1F44D, 0x1F3FD] + [0] * 6]], np.int32)
    here = hashlib.sha256(TP.ternary_features_np(x, 300, 11).tobytes()).hexdigest()
    out = _run(f"""
        import hashlib, numpy as np
        from prado_tiny.layers import ternary_projection as TP
        x = np.array({x.tolist()}, np.int32)
        print(hashlib.sha256(TP.ternary_features_np(x, 300, 11).tobytes()).hexdigest())
    """)
    assert out.split()[-1] == here


TFLITE_CHECK = """
    import json
    import numpy as np
    import tensorflow as tf, tf_keras as keras
    from hypothesis import given, settings, strategies as st
    import test_ternary_projection as T
    from prado_tiny.layers import ternary_projection as TP
    from prado_tiny.export.inspect import check_builtin_int8
    from prado_tiny.export.tflite import convert as export_convert
    from ai_edge_litert.interpreter import Interpreter

    B, TOK, C, F = 2, 5, 10, 300

    def convert(model):  # prado-export's conversion, on random padded words
        rng = np.random.default_rng(0)
        samples = []
        for _ in range(16):
            x = np.zeros((B, TOK, C), np.int32)
            x[:, :rng.integers(1, TOK + 1), :rng.integers(1, C + 1)] = rng.integers(97, 123)
            samples.append(x)
        return export_convert(model, samples)

    inp = keras.Input((TOK, C), batch_size=B, dtype="int32")
    feats = TP.TernaryProjection(num_features=F, seed=3)(inp)
    with_dense = convert(keras.Model(inp, keras.layers.Dense(8)(feats)))
    only = convert(keras.Model(inp, feats))
    report = check_builtin_int8(with_dense)
    print(json.dumps({"ok": report.ok, "violations": report.violations, "ops": report.op_counts,
                      "outputs": [str(t) for t in report.outputs],
                      "proj_ok": check_builtin_int8(only).ok}))

    it = Interpreter(model_content=only)
    it.allocate_tensors()
    inp_d, out_d = it.get_input_details()[0], it.get_output_details()[0]
    assert out_d["dtype"] == np.int8 and out_d["quantization"] == (1.0, 0), out_d

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.one_of(T.token_tensors(B, TOK, C), T.raw_int32.map(
        lambda r: np.pad(r, [(0, 0), (0, TOK - 3), (0, C - 6)]))))
    def check(x):
        it.set_tensor(inp_d["index"], x)
        it.invoke()
        got = it.get_tensor(out_d["index"]).astype(np.int32)
        assert np.array_equal(got, TP.ternary_features_np(x, F, 3).astype(np.int32))

    check()
    print("checked")
"""


@pytest.fixture(scope="module")
def tflite_run():
    lines = _run(TFLITE_CHECK).strip().splitlines()
    assert lines[-1] == "checked"
    return json.loads(lines[-2])


def test_tflite_model_is_builtin_int8(tflite_run):
    assert tflite_run["ok"], tflite_run["violations"]
    assert tflite_run["proj_ok"]
    assert tflite_run["outputs"][0].startswith("int8[2x5x8]")
    assert "QUANTIZE" not in tflite_run["ops"] and "DEQUANTIZE" not in tflite_run["ops"]


def test_tflite_features_equal_numpy_bit_for_bit(tflite_run):
    assert tflite_run is not None  # the property ran in the subprocess
