"""prado_tiny.bench.model_stats: MACs and parameters from a flatbuffer, checked against counts
worked out by hand for a model with one op of each kind (converted in a subprocess)."""
import os
import subprocess
import sys
import textwrap

import pytest

from prado_tiny.bench.model_stats import model_stats

BUILD = textwrap.dedent("""
    import os, sys
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf
    import tf_keras as keras
    init = lambda seed: keras.initializers.RandomNormal(seed=seed)
    x = keras.Input(shape=(8, 16), batch_size=1)
    h = keras.layers.Dense(32, bias_initializer=init(1))(x)
    a = tf.matmul(h, h, transpose_b=True)
    img = keras.Input(shape=(6, 6, 3), batch_size=1)
    c = keras.layers.Conv2D(4, 3, bias_initializer=init(2))(img)
    d = keras.layers.DepthwiseConv2D(3, padding="same", bias_initializer=init(3))(c)
    m = keras.Model([x, img], [a, d])
    open(sys.argv[1], "wb").write(tf.lite.TFLiteConverter.from_keras_model(m).convert())
""")


@pytest.fixture(scope="module")
def small_tflite(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("stats") / "ops.tflite")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run([sys.executable, "-c", BUILD, path], capture_output=True, text=True,
                       env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return path


def test_macs_per_op_kind(small_tflite):
    s = model_stats(small_tflite)
    assert s.macs_by_op == {
        "FULLY_CONNECTED": 8 * 16 * 32,   # rows x in x out
        "BATCH_MATMUL": 8 * 8 * 32,       # [8, 32] x [32, 8]: output elements x K
        "CONV_2D": 4 * 4 * 4 * 3 * 3 * 3,  # output [1, 4, 4, 4], 3x3 filter over 3 channels
        "DEPTHWISE_CONV_2D": 4 * 4 * 4 * 3 * 3,
    }
    assert s.macs == sum(s.macs_by_op.values())


def test_params_size_and_inputs(small_tflite):
    s = model_stats(small_tflite)
    # Dense 16x32 + 32, Conv 3x3x3x4 + 4, depthwise 3x3x4 + 4.
    assert s.params == 16 * 32 + 32 + 27 * 4 + 4 + 9 * 4 + 4
    assert s.size_bytes == os.path.getsize(small_tflite)
    assert s.input_shapes == [[1, 8, 16], [1, 6, 6, 3]] and s.input_dtypes == ["FLOAT32"] * 2
    assert s.ops == 4


def test_exported_mixer_counts_int8_weights(tiny_export):
    from prado_tiny.export.inspect import inspect_model
    s = model_stats(tiny_export[1])
    assert s.macs > 0 and set(s.macs_by_op) <= {"FULLY_CONNECTED", "BATCH_MATMUL"}
    # Every int8 constant (the weights) is counted once; the int32 hashing constants are not.
    int8 = {(t.name, t.shape) for op in inspect_model(tiny_export[1]).ops for t in op.inputs
            if t.constant and t.dtype == "INT8"}
    n_int8 = sum(int(__import__("numpy").prod(shape)) for _, shape in int8)
    assert n_int8 <= s.params < n_int8 + 10_000


def test_not_a_flatbuffer(tmp_path):
    p = tmp_path / "x.tflite"
    p.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        model_stats(str(p))


def test_tensors_without_names_are_still_counted_apart(tiny_export, tmp_path):
    # prado-export may drop internal tensor names: constants are told apart by buffer, not name.
    from ai_edge_litert.tools import flatbuffer_utils as fu
    m = fu.read_model(tiny_export[1])
    for sg in m.subgraphs:
        for t in sg.tensors:
            t.name = b""
    nameless = str(tmp_path / "nameless.tflite")
    fu.write_model(m, nameless)
    a, b = model_stats(tiny_export[1]), model_stats(nameless)
    assert b.params == a.params and b.macs == a.macs
