"""Tests for prado_tiny.layers.qrnn: fo-pooling, direction, padding, zoneout, scan = unrolled, int8."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.qrnn import QRNN

D, H = 5, 4


def batch(seed, lengths, tokens):
    """x [B, tokens, D], zero at padding (the input contract), and mask [B, tokens, 1]."""
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    mask = (np.arange(tokens)[None, :] < lengths[:, None]).astype(np.float32)[..., None]
    return rng.normal(0, 1, (len(lengths), tokens, D)).astype(np.float32) * mask, mask


def make(seed=0, **kwargs):
    layer = QRNN(H, **kwargs)
    layer.build(tf.TensorShape([None, None, D]))
    rng = np.random.default_rng(seed + 10)
    for w in layer.trainable_weights:  # non-zero biases too, so no leak hides behind a zero
        w.assign(rng.normal(0, 0.7, w.shape).astype(np.float32))
    return layer


def reference(layer, x, mask):
    """fo-pooling written out per example in NumPy, from the layer's own gate weights."""
    def direction(dense, forward):
        k = layer.kernel_width
        xs = x if forward else x[:, ::-1]
        ms = mask if forward else mask[:, ::-1]
        t = x.shape[1]
        xp = np.concatenate([np.zeros((x.shape[0], k - 1, D), np.float32), xs], axis=1)
        # Window of positions t-k+1..t in time order (backward: in reversed time order, which
        # the layer lays out as x[t..t+k-1] in original order, i.e. oldest-first reversed).
        wins = np.stack([xp[:, i:i + t] for i in range(k)], axis=2)  # [B, T, k, D]
        if not forward:
            wins = wins[:, :, ::-1]
        g = wins.reshape(x.shape[0], t, k * D) @ dense.kernel.numpy() + dense.bias.numpy()
        z, u, o = np.split(g, 3, axis=-1)
        z, upd, o = np.tanh(z), 1 / (1 + np.exp(-u)) * ms, 1 / (1 + np.exp(-o))
        c = np.zeros((x.shape[0], H), np.float32)
        out = np.zeros((x.shape[0], t, H), np.float32)
        for i in range(t):
            c = (1 - upd[:, i]) * c + upd[:, i] * z[:, i]
            out[:, i] = c * o[:, i] * ms[:, i]
        return out if forward else out[:, ::-1]
    return np.concatenate([direction(layer.gates_forward, True),
                           direction(layer.gates_backward, False)], axis=-1)


@pytest.mark.parametrize("kernel_width", [1, 3])
def test_matches_fo_pooling_written_out(kernel_width):
    layer = make(kernel_width=kernel_width)
    x, mask = batch(0, [6, 3], 6)
    np.testing.assert_allclose(layer(x, mask).numpy(), reference(layer, x, mask), atol=1e-5)


def test_padding_is_zero_and_more_padding_changes_nothing():
    layer = make()
    x, mask = batch(1, [7, 2, 5], 7)
    short = layer(x[:, :5], mask[:, :5]).numpy()  # the longest of examples 1 and 2
    full = layer(x, mask).numpy()
    assert np.all(full[1, 2:] == 0) and np.all(full[2, 5:] == 0)
    np.testing.assert_allclose(full[1:, :5], short[1:], atol=1e-6)


def test_directions_see_past_and_future():
    layer = make()
    x, mask = batch(2, [6], 6)
    changed = x.copy()
    changed[0, 3] += 1.0
    a, b = layer(x, mask).numpy(), layer(changed, mask).numpy()
    diff = np.abs(a - b).max(axis=-1)[0]
    fwd, bwd = np.abs(a - b)[0, :, :H].max(-1), np.abs(a - b)[0, :, H:].max(-1)
    assert np.all(fwd[:3] == 0) and np.all(fwd[3:] > 0)  # forward: only from position 3 on
    assert np.all(bwd[4:] == 0) and np.all(bwd[:4] > 0)  # backward: only up to position 3
    assert np.all(diff > 0)
    uni = make(bidirectional=False)
    assert uni(x, mask).shape == (1, 6, H)


@pytest.mark.parametrize("quantize", [False, True])
def test_scan_for_dynamic_length_equals_unrolled(quantize):
    layer = make(quantize=quantize)
    x, mask = batch(3, [5, 4], 5)
    if quantize:
        layer(x, mask, training=True)  # sets the gate dense ranges
    dynamic = tf.function(lambda a, m: layer(a, m), input_signature=[
        tf.TensorSpec([None, None, D]), tf.TensorSpec([None, None, 1])])
    np.testing.assert_allclose(dynamic(x, mask).numpy(), layer(x, mask).numpy(), atol=1e-6)


def test_quantized_values_lie_on_the_int8_grid_of_their_fixed_range():
    layer = make(quantize=True)
    x, mask = batch(4, [6, 6], 6)
    layer(x, mask, training=True)
    out = layer(x, mask).numpy()
    assert np.abs(out).max() <= 1.0 + 1e-6
    steps = np.round(out * 255 / 2, 3)  # the [-1, 1] grid: steps of 2/255 through 0
    np.testing.assert_allclose(steps, np.round(steps), atol=2e-3)
    assert not np.allclose(out, make()(x, mask).numpy(), atol=1e-4)  # quantization is on


def test_zoneout_only_in_training_and_it_keeps_states():
    x, mask = batch(5, [8], 8)
    layer = make(zoneout=0.99)
    infer = layer(x, mask).numpy()
    np.testing.assert_array_equal(infer, layer(x, mask, training=False).numpy())
    assert np.all(infer != 0)
    tf.random.set_seed(0)
    train = layer(x, mask, training=True).numpy()
    # Zoneout keeps the previous state: with p = 0.99 almost every step keeps the initial
    # state 0, so almost every output is exactly 0.
    assert np.mean(train == 0) > 0.9
    np.testing.assert_allclose(make(zoneout=0.0)(x, mask, training=True).numpy(), infer, atol=1e-6)


def test_gradients_reach_every_weight_through_the_recurrence():
    layer = make()
    x, mask = batch(6, [5, 3], 5)
    xv = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = layer(xv, mask, training=True)
        loss = tf.reduce_sum(out[:, 0] ** 2)  # position 0 only
    grads = tape.gradient(loss, [xv] + layer.trainable_weights)
    assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads[1:])
    # The backward state at position 0 carries every later real token of example 0.
    assert np.all(np.abs(grads[0].numpy()[0]).sum(-1) > 0)


def test_validation_and_get_config_round_trip():
    for bad in (dict(units=0), dict(units=2, kernel_width=0), dict(units=2, zoneout=1.0)):
        with pytest.raises(ValueError):
            QRNN(**bad)
    layer = QRNN(6, kernel_width=2, zoneout=0.25, bidirectional=False, quantize=True, name="q")
    clone = QRNN.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert keras.utils.get_registered_object("prado_tiny>QRNN") is QRNN


CONVERT = r"""
import json, os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import numpy as np, tensorflow as tf, tf_keras as keras
from prado_tiny.layers.qrnn import QRNN
from prado_tiny.export.inspect import check_builtin_int8
T, D = 12, 5
rng = np.random.default_rng(0)
layer = QRNN(8, quantize=True)
mask = (np.arange(T)[None, :] < rng.integers(3, T + 1, (64, 1))).astype(np.float32)[..., None]
x = np.clip(rng.normal(0, 1, (64, T, D)), -3, 3).astype(np.float32) * mask
for _ in range(20):  # moving-average ranges of the gate layers
    layer(x, mask, training=True)
inp = keras.Input((T, D), batch_size=1)
m = keras.Input((T, 1), batch_size=1)
model = keras.Model([inp, m], layer(inp, m))
conv = tf.lite.TFLiteConverter.from_keras_model(model)
conv.optimizations = [tf.lite.Optimize.DEFAULT]
conv.representative_dataset = lambda: ([x[i:i + 1], mask[i:i + 1]] for i in range(64))
conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
conv.inference_input_type = tf.int8
conv.inference_output_type = tf.int8
data = conv.convert()
report = check_builtin_int8(data)
from ai_edge_litert.interpreter import Interpreter
it = Interpreter(model_content=data)
it.allocate_tensors()
diffs = []
for i in range(8):
    for d in it.get_input_details():
        v = x[i:i + 1] if d["shape"][-1] == D else mask[i:i + 1]
        s, z = d["quantization"]
        it.set_tensor(d["index"], np.clip(np.round(v / s + z), -128, 127).astype(np.int8))
    it.invoke()
    o = it.get_output_details()[0]
    s, z = o["quantization"]
    got = (it.get_tensor(o["index"]).astype(np.float32) - z) * s
    diffs.append(float(np.abs(got - layer(x[i:i + 1], mask[i:i + 1]).numpy()).max()))
names = sorted(report.op_counts)
print(json.dumps({"ok": report.ok, "violations": [str(v) for v in report.violations],
                  "ops": names, "max_diff": max(diffs), "loops": [n for n in names if "WHILE" in n]}))
"""


def test_quantized_layer_converts_to_builtin_int8_without_a_loop(tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_USE_LEGACY_KERAS="1")
    r = subprocess.run([sys.executable, "-c", CONVERT], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["ok"], out["violations"]
    assert not out["loops"] and "MUL" in out["ops"] and "ADD" in out["ops"]
    # Outputs lie in [-1, 1] on a 2/255 grid; 12 recurrent steps of int8 rounding stay within
    # a few steps of the fake-quantized Keras layer.
    assert out["max_diff"] < 0.05, out
