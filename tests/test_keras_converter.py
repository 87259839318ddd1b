"""keras_converter (`prado_tiny.export.keras_converter`): the same flatbuffer as
`TFLiteConverter.from_keras_model` for a multi-input, multi-output functional model, float and
int8, without the Keras SavedModel."""
import doctest
import glob
import os
import tempfile

import numpy as np
import tensorflow as tf
import tf_keras as keras

from prado_tiny.export import keras_converter as keras_converter_module
from prado_tiny.export.keras_converter import keras_converter


def _model():
    ids = keras.Input((6,), batch_size=1, dtype="int32", name="ids")
    feats = keras.Input((6, 4), batch_size=1, name="feats")
    x = keras.layers.Embedding(10, 4)(ids) + keras.layers.Dense(4)(feats)
    x = keras.layers.LayerNormalization()(x)
    scores = keras.layers.Dense(3, name="scores")(x)
    pooled = keras.layers.Dense(2, name="pooled")(keras.layers.GlobalAveragePooling1D()(x))
    return keras.Model({"ids": ids, "feats": feats}, {"scores": scores, "pooled": pooled})


def _samples(n=8):
    rng = np.random.default_rng(0)
    return [{"ids": rng.integers(0, 10, (1, 6)).astype(np.int32),
             "feats": rng.normal(size=(1, 6, 4)).astype(np.float32)} for _ in range(n)]


def _int8(conv):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: iter(_samples())
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return conv.convert()


def _describe(flatbuffer):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=flatbuffer)
    runner = it.get_signature_runner()
    tensors = [(d["name"], tuple(d["shape"]), d["dtype"], tuple(d["quantization_parameters"]["scales"]))
               for d in it.get_tensor_details()]
    ops = [op["op_name"] for op in it._get_ops_details()]
    outputs = [runner(**s) for s in _samples(3)]
    return sorted(runner.get_input_details()), sorted(runner.get_output_details()), tensors, ops, outputs


def test_same_flatbuffer_as_from_keras_model_float_and_int8():
    model = _model()
    for convert in (lambda c: c.convert(), _int8):
        with keras_converter(model) as conv:
            ours = _describe(convert(conv))
        theirs = _describe(convert(tf.lite.TFLiteConverter.from_keras_model(model)))
        assert ours[0] == theirs[0] == ["feats", "ids"]
        assert ours[1] == theirs[1] == ["pooled", "scores"]
        assert ours[2] == theirs[2] and ours[3] == theirs[3]
        for a, b in zip(ours[4], theirs[4]):
            for k in a:
                np.testing.assert_array_equal(a[k], b[k])


def test_the_saved_model_is_removed_after_the_block():
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "prado_convert_*")))
    with keras_converter(_model()) as conv:
        conv.convert()
        during = set(glob.glob(os.path.join(tempfile.gettempdir(), "prado_convert_*"))) - before
        assert len(during) == 1
    assert not (set(glob.glob(os.path.join(tempfile.gettempdir(), "prado_convert_*"))) - before)


def test_docstring_example():
    assert doctest.testmod(keras_converter_module).failed == 0
