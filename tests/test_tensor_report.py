"""Per-tensor int8 quantization error (`prado_tiny.export.tensor_report`) on a tiny Keras model;
the prado-export flag is tested in test_export_main (it reuses that file's trained model)."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.export.tensor_report import _input_key, format_report, tensor_errors
from prado_tiny.models.pqrnn_matt import _convert


def _samples(scale: float, n: int = 24, seed: int = 0):
    """Uniform in [-scale, scale]: bounded, so that the calibration sees the range of any draw."""
    rng = np.random.default_rng(seed)
    return [{"features": rng.uniform(-scale, scale, (1, 8)).astype(np.float32)} for _ in range(n)]


@pytest.fixture(scope="module")
def converted():
    """-> (float .tflite, int8 .tflite calibrated on unit-range inputs, int8 .tflite calibrated on
    inputs 100 times smaller) of Input(8) -> Dense(16, relu) -> LayerNorm -> Dense(4)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), batch_size=1, name="features")
    x = keras.layers.Dense(16, activation="relu")(inp)
    x = keras.layers.LayerNormalization()(x)
    model = keras.Model(inp, keras.layers.Dense(4, name="out")(x))
    return (tf.lite.TFLiteConverter.from_keras_model(model).convert(),
            _convert(model, _samples(1.0)), _convert(model, _samples(0.01)))


def _output_row(rows, data: bytes):
    from ai_edge_litert.interpreter import Interpreter
    name = Interpreter(model_content=data).get_output_details()[0]["name"]
    return next(r for r in rows if r["name"] == name)


def test_rows_of_a_well_calibrated_model(converted):
    fl, good, _ = converted
    rows = tensor_errors(fl, good, _samples(1.0))  # the calibration inputs
    assert rows
    names = [r["name"] for r in rows]
    assert len(set(names)) == len(names)
    assert "serving_default_features:0" in names  # the quantized input itself
    out = _output_row(rows, good)
    assert 0.0 < out["relative_rms"] < 0.1
    for r in rows:
        assert set(r) == {"name", "shape", "relative_rms", "max_abs_error", "scale", "max_error_lsb"}
        assert r["scale"] > 0 and r["max_error_lsb"] == pytest.approx(r["max_abs_error"] / r["scale"])
    # A weight matrix is rounded to its scale: at most half an LSB.
    weights = [r for r in rows if r["shape"] == [16, 8]]
    assert weights and weights[0]["max_error_lsb"] <= 0.5 + 1e-6


def test_bad_calibration_shows_a_larger_error(converted):
    fl, good, bad = converted
    samples = _samples(1.0)
    assert (_output_row(tensor_errors(fl, bad, samples), bad)["relative_rms"]
            > 5 * _output_row(tensor_errors(fl, good, samples), good)["relative_rms"])


def test_array_and_dict_samples_agree(converted):
    fl, good, _ = converted
    dicts = _samples(1.0, n=4, seed=2)
    arrays = [s["features"][0] for s in dicts]  # the batch dimension may be left out
    assert tensor_errors(fl, good, arrays) == tensor_errors(fl, good, dicts)


def test_input_key_prefers_the_exact_then_longest_key():
    keys = ["mean_1", "mean_10", "keys_0", "pointer_keys"]
    assert _input_key("serving_default_mean_10:0", keys) == "mean_10"
    assert _input_key("serving_default_mean_1:0", keys) == "mean_1"
    assert _input_key("serving_default_pointer_keys:0", keys) == "pointer_keys"
    assert _input_key("serving_default_x_keys_0_y:0", keys) == "keys_0"
    with pytest.raises(KeyError):
        _input_key("serving_default_token:0", keys)


def test_format_report(converted):
    fl, good, _ = converted
    rows = tensor_errors(fl, good, _samples(1.0, n=4, seed=1))
    text = format_report(rows)
    header, *lines = text.splitlines()
    assert "rel. RMS" in header and "max err (LSB)" in header and "name" in header
    assert len(lines) == len(rows)
    top = format_report(rows, top=3).splitlines()[1:]
    assert len(top) == 3
    worst = sorted(rows, key=lambda r: -r["relative_rms"])[:3]
    kept = [next(r for r in rows if line.endswith(" " + r["name"])) for line in top]
    assert {r["name"] for r in kept} == {r["name"] for r in worst}
    assert kept == [r for r in rows if r in kept]  # graph order
    long = dict(rows[0], name="x" * 300)
    assert max(len(line) for line in format_report([long]).splitlines()) < 150
