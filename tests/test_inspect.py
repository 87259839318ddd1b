"""Tests for prado_tiny.export.inspect: the flatbuffer scan and the exact int8 cast fold.

The models are converted in one subprocess (a converter crash stays there) and scanned here.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from prado_tiny.export import inspect as I

REPO = pathlib.Path(__file__).resolve().parents[1]

MAKE_MODELS = """
    import json, os, sys
    import numpy as np
    import tensorflow as tf, tf_keras as keras
    from prado_tiny.layers.minhash_projection import exact_int8

    out = sys.argv[1]
    rng = np.random.default_rng(0)

    def save(name, data):
        with open(os.path.join(out, name + ".tflite"), "wb") as f:
            f.write(data)

    def converter(model, int8_io=True, reps=None):
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = reps
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if int8_io:
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
        return conv

    float_reps = lambda: ([rng.normal(size=(1, 8)).astype(np.float32)] for _ in range(32))
    inp = keras.Input((8,), batch_size=1)
    dense = keras.Model(inp, keras.layers.Dense(4, activation="relu")(inp))
    plain = tf.lite.TFLiteConverter.from_keras_model(dense)
    save("float", plain.convert())
    save("int8_float_io", converter(dense, False, float_reps).convert())
    save("int8", converter(dense, True, float_reps).convert())

    @tf.function(input_signature=[tf.TensorSpec([2], tf.string)])
    def strings(x):
        return tf.strings.length(x)
    flex = tf.lite.TFLiteConverter.from_concrete_functions([strings.get_concrete_function()], strings)
    flex.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
    save("flex", flex.convert())

    class Counts(keras.layers.Layer):
        def __init__(self, how, **kw):
            super().__init__(**kw)
            self.how = how
        def call(self, x):
            c = tf.math.floormod(x, 5) - 2  # small ints in [-2, 2]
            if self.how == "marked3d":  # [batch, tokens, features], as the projections give
                return exact_int8(tf.reshape(c, [1, 2, 4]))
            if self.how == "marked":
                return exact_int8(c)
            f = tf.cast(c, tf.float32, name="exact_int8_cast" if self.how == "badrange" else "plain")
            lo, hi = (-128.0, 127.0) if self.how == "unmarked" else (-64.0, 63.5)
            return tf.quantization.fake_quant_with_min_max_args(f, min=lo, max=hi)

    int_reps = lambda: ([rng.integers(0, 100, (1, 8)).astype(np.int32)] for _ in range(32))
    for how in ("marked", "marked3d", "unmarked", "badrange"):
        iinp = keras.Input((8,), batch_size=1, dtype="int32")
        model = keras.Model(iinp, keras.layers.Dense(3)(Counts(how)(iinp)))
        save("cast_" + how, converter(model, True, int_reps).convert())
    print("made")
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(MAKE_MODELS), str(out)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0 and "made" in proc.stdout, proc.stderr[-5000:]
    return out


def test_int8_model_is_clean(models):
    report = I.check_builtin_int8(models / "int8.tflite")
    assert report.ok and report.violations == []
    assert [t.dtype for t in report.inputs] == ["INT8"] and [t.dtype for t in report.outputs] == ["INT8"]
    assert report.op_counts == {"FULLY_CONNECTED": 1}
    fc = report.ops[0]
    assert [t.dtype for t in fc.inputs][:2] == ["INT8", "INT8"] and fc.inputs[1].constant
    assert "builtin-only integer model: yes" in report.summary()


def test_float_model_and_float_boundaries_are_reported(models):
    report = I.check_builtin_int8(models / "float.tflite")
    assert not report.ok and report.float_ops and report.subgraph_io_float
    boundary = I.check_builtin_int8(models / "int8_float_io.tflite")
    names = {op.name for op in boundary.float_ops}
    assert {"QUANTIZE", "DEQUANTIZE"} <= names and boundary.subgraph_io_float
    with pytest.raises(I.NotBuiltinInt8Error, match="float op"):
        I.check_builtin_int8(models / "float.tflite", raise_on_violation=True)


def test_flex_and_custom_ops_are_reported(models):
    report = I.check_builtin_int8(models / "flex.tflite")
    assert report.flex_ops and report.flex_ops[0].name.startswith("custom:Flex")
    assert any(v.startswith("Flex op") for v in report.violations)
    # A custom op: rewrite the int8 model's FULLY_CONNECTED opcode as CUSTOM "MyOp".
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fu
    model = fu.read_model_from_bytearray(bytearray((models / "int8.tflite").read_bytes()))
    model.operatorCodes[0].builtinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    model.operatorCodes[0].customCode = "MyOp"
    custom = I.check_builtin_int8(bytes(fu.convert_object_to_bytearray(model)))
    assert [op.name for op in custom.custom_ops] == ["custom:MyOp"] and not custom.flex_ops
    assert not custom.ok


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def test_fold_turns_cast_and_quantize_into_an_int8_cast(models):
    data = (models / "cast_marked3d.tflite").read_bytes()
    before = I.check_builtin_int8(data)
    assert {op.name for op in before.float_ops} == {"CAST", "QUANTIZE"}
    folded = I.fold_exact_int8_casts(data)
    after = I.check_builtin_int8(folded)
    assert after.ok, after.violations
    casts = [op for op in after.ops if op.name == "CAST"]
    assert casts and casts[0].outputs[0].dtype == "INT8" and casts[0].outputs[0].scale == (1.0,)
    assert len(after.ops) == len(before.ops) - 1 and "QUANTIZE" not in after.op_counts
    rng = np.random.default_rng(1)
    for _ in range(20):
        x = rng.integers(-(2**31), 2**31 - 1, size=(1, 8)).astype(np.int32)
        assert np.array_equal(_run(data, x), _run(folded, x))


def test_fold_replaces_a_requantization_by_an_int8_quantize(models):
    # A 2-D FULLY_CONNECTED input gets requantized by the converter (DEQUANTIZE + QUANTIZE);
    # the fold makes that one int8 -> int8 QUANTIZE.
    data = (models / "cast_marked.tflite").read_bytes()
    assert {op.name for op in I.check_builtin_int8(data).float_ops} == {"CAST", "QUANTIZE",
                                                                        "DEQUANTIZE"}
    folded = I.fold_exact_int8_casts(data)
    after = I.check_builtin_int8(folded)
    assert after.ok, after.violations
    assert after.op_counts["QUANTIZE"] == 1 and "DEQUANTIZE" not in after.op_counts
    rng = np.random.default_rng(2)
    for _ in range(20):
        x = rng.integers(0, 1000, size=(1, 8)).astype(np.int32)
        diff = np.abs(_run(data, x).astype(int) - _run(folded, x).astype(int))
        assert diff.max() <= 1  # integer vs float requantization rounding


def test_fold_leaves_unmarked_casts_and_rejects_inexact_ones(models):
    data = (models / "cast_unmarked.tflite").read_bytes()
    assert I.fold_exact_int8_casts(data) == data
    with pytest.raises(ValueError, match="scale 1"):
        I.fold_exact_int8_casts((models / "cast_badrange.tflite").read_bytes())


def test_command_line(models, capsys):
    assert I.main([str(models / "int8.tflite")]) == 0
    assert "builtin-only integer model: yes" in capsys.readouterr().out
    assert I.main([str(models / "float.tflite"), "--ops"]) == 1
    assert "FULLY_CONNECTED(float32" in capsys.readouterr().out
    assert I.main([]) == 2


def test_rejects_non_flatbuffers(tmp_path):
    path = tmp_path / "x.tflite"
    path.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        I.inspect_model(path)
