"""Tests for prado_tiny.layers.quant_layer_norm: LayerNorm with its int8 lowering fake-quantized."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.export.inspect import check_builtin_int8
from prado_tiny.layers.fake_quant import FakeQuant
from prado_tiny.layers.quant_layer_norm import QuantLayerNorm
# The converter of pQRNN-MAtt's step model: int8 float inputs too, named samples.
from prado_tiny.models.pqrnn_matt import _convert as convert

D = 24


def rand(shape, seed, scale=1.0, offset=0.0):
    return (np.random.default_rng(seed).normal(0.0, scale, shape) + offset).astype(np.float32)


def batches(n=40):
    """Rows with per-row offsets and scales, as residual sums are (the mean is not ~0)."""
    return [rand([1, 4, D], i, scale=1.0 + 0.25 * (i % 5), offset=0.5 * ((i % 7) - 3.0))
            for i in range(n)]


def train_ranges(*layers):
    """Training calls on the whole calibration set at once: each batch spans the data's range
    (one row a batch would leave the moving averages inside it)."""
    x = np.concatenate(batches(), axis=0)
    for _ in range(3):
        for layer in layers:
            layer(x, training=True)


def with_affine(layer, seed=0):
    layer.build(tf.TensorShape([None, 4, D]))
    layer.gamma.assign(1.0 + 0.3 * rand([D], seed))
    layer.beta.assign(0.2 * rand([D], seed + 1))
    return layer


def test_float_equals_keras_layer_normalization():
    norm = with_affine(QuantLayerNorm(epsilon=1e-3))
    ref = keras.layers.LayerNormalization(epsilon=1e-3)
    ref.build(tf.TensorShape([None, 4, D]))
    ref.set_weights([norm.gamma.numpy(), norm.beta.numpy()])
    x = rand([3, 4, D], 5, scale=3.0, offset=2.0)
    np.testing.assert_allclose(norm(x).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-4)
    # In training with quantize off, only the ranges move: the output is the same.
    np.testing.assert_allclose(norm(x, training=True).numpy(), ref(x).numpy(), rtol=1e-4, atol=1e-4)
    assert all(float(q.seen) == 1.0 for q in norm.stages.values())


def test_quantized_output_is_close_and_on_the_output_grid():
    norm = with_affine(QuantLayerNorm())
    train_ranges(norm)
    float_out = [norm(x).numpy() for x in batches(8)]
    norm.quantize = True
    assert all(q.quantize for q in norm.stages.values())
    values = []
    for x, f in zip(batches(8), float_out):
        y = norm(x).numpy()
        assert not np.allclose(y, f, atol=1e-6)  # the stages round
        assert np.sqrt(np.mean((y - f) ** 2) / np.mean(f ** 2)) < 0.1
        values.append(y.ravel())
    assert len(np.unique(np.concatenate(values))) <= 256  # int8 levels of the output range


def _tflite_error(layer, trained_inputs):
    """Relative RMS error of the int8 .tflite of `Input -> input range -> layer` against the
    Keras model (the input's own rounding is in both)."""
    x_quant = FakeQuant(True)
    x_quant(np.concatenate(trained_inputs, axis=0), training=True)
    inp = keras.Input((4, D), batch_size=1, name="x")
    model = keras.Model(inp, layer(x_quant(inp)))
    data = convert(model, [{"x": x} for x in trained_inputs])
    assert check_builtin_int8(data).ok
    it = tf.lite.Interpreter(model_content=data)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    num = den = 0.0
    for x in batches(60)[40:]:
        if i["dtype"] == np.int8:
            s, z = i["quantization"]
            it.set_tensor(i["index"], np.clip(np.round(x / s + z), -128, 127).astype(np.int8))
        else:
            it.set_tensor(i["index"], x)
        it.invoke()
        s, z = o["quantization"]
        y = (it.get_tensor(o["index"]).astype(np.float32) - z) * s
        k = model(x).numpy()
        num += float(np.sum((y - k) ** 2))
        den += float(np.sum(k ** 2))
    return np.sqrt(num / den)


class _PlainNorm(keras.layers.Layer):
    """Keras LayerNormalization with only its output fake-quantized (the legacy layout)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.norm = keras.layers.LayerNormalization(epsilon=1e-5)
        self.out = FakeQuant(False)

    def call(self, x, training=None):
        return self.out(self.norm(x), training=training)


def test_int8_tflite_computes_what_qat_computed():
    """The point of the layer: with every stage's range trained, the int8 LayerNorm lands
    within a fraction of an output step of the Keras layer; a Keras LayerNorm with a
    fake-quantized output alone drifts further (the converter rounds stages QAT never saw)."""
    norm = with_affine(QuantLayerNorm())
    plain = _PlainNorm()
    plain(batches(1)[0])
    plain.norm.set_weights([norm.gamma.numpy(), norm.beta.numpy()])
    train_ranges(norm, plain)
    norm.quantize = True
    plain.out.quantize = True
    calibration = batches(40)
    faithful, legacy = _tflite_error(norm, calibration), _tflite_error(plain, calibration)
    print(f'int8 vs Keras, relative RMS: QuantLayerNorm {faithful:.4f}, LayerNorm + output quant {legacy:.4f}')
    assert faithful < 0.05
    assert faithful < legacy / 2


def test_get_config_round_trip_and_errors():
    norm = QuantLayerNorm(epsilon=1e-3, quantize=True, name="n")
    again = QuantLayerNorm.from_config(norm.get_config())
    assert (again.epsilon, again.quantize, again.name) == (1e-3, True, "n")
    with pytest.raises(ValueError, match="epsilon"):
        QuantLayerNorm(epsilon=0.0)


def test_a_constant_row_gives_beta_and_never_nan():
    """Six-language pQRNN-MAtt QAT went NaN at its first quantized step: a row whose variance
    rounds to int8 zero gave rsqrt(0) = inf and one inf range poisons all later ranges."""
    norm = with_affine(QuantLayerNorm(quantize=True))
    x = rand([4, 4, D], 11, scale=10.0)
    x[0, 0] = 3.0  # constant: variance 0
    x[1, 2] = 0.0  # all zero, as a masked row
    x[2, 1] = np.linspace(0.0, 1e-3, D)  # variance far below one int8 step of the range
    for _ in range(3):
        y = norm(x, training=True).numpy()
        assert np.all(np.isfinite(y))
    assert all(np.isfinite(float(q.range_min)) and np.isfinite(float(q.range_max))
               for q in norm.stages.values())
    beta = norm(np.zeros([1, 1, D], np.float32)).numpy()[0, 0]  # what any constant row gives
    for row in (y[0, 0], y[1, 2], y[2, 1]):
        np.testing.assert_allclose(row, beta, atol=1e-6)
    # The other rows are still normalized.
    assert np.sqrt(np.mean(y[3] ** 2)) > 0.5
    # The guard converts to builtin int8 ops and the .tflite agrees with Keras on such rows.
    err = _tflite_error(norm, [x[i:i + 1] for i in range(4)] + batches(36))
    assert err < 0.05
