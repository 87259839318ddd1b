"""Tests for prado_tiny.models.pqrnn: config, the two input forms agreeing, and the whole
prado-train -> prado-export -> prado-eval -> Predictor path of a tiny pQRNN on the demo data."""
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.export.inspect import check_builtin_int8
from prado_tiny.export.metadata import read_metadata
from prado_tiny.layers.fake_quant import set_quantize
from prado_tiny.layers.ternary_projection import TernaryFeaturizer
from prado_tiny.models.base import export_model
from prado_tiny.models.pqrnn import PQRNN, PQRNNConfig

from conftest import run_module

T, F = 8, 64
TEXTS = ["set an alarm for 7 am", "what's the weather in Zürich tomorrow",
         "hi", "remind me to call mom at noon on friday please ok thanks"]


def config(**kwargs):
    args = dict(num_intents=5, num_slot_tags=7, max_seq_len=T, num_features=F, bottleneck_dim=16,
                state_dim=8, num_layers=2, zoneout=0.0)
    args.update(kwargs)
    return PQRNNConfig(**args)


@pytest.fixture(scope="module")
def data():
    codepoints = TextEncoder(max_tokens=T, max_chars=8).encode_texts(TEXTS).codepoints
    projection = TernaryFeaturizer(F).features(codepoints, np.int8)
    mask = (codepoints[..., 0] != 0).astype(np.int32)
    return codepoints, projection, mask


def outputs(model, codepoints, projection, mask, training=False):
    a = model({"codepoints": tf.constant(codepoints)}, training=training)
    b = model({"projection": tf.constant(projection), "token_mask": tf.constant(mask)},
              training=training)
    return {k: v.numpy() for k, v in a.items()}, {k: v.numpy() for k, v in b.items()}


def test_config_defaults_and_validation():
    c = PQRNNConfig(num_intents=3, num_slot_tags=5)
    assert (c.num_features, c.bottleneck_dim, c.state_dim, c.num_layers, c.kernel_width) == \
        (512, 256, 128, 2, 3)
    for bad in (dict(state_dim=0), dict(zoneout=1.0), dict(intent_mode="x"), dict(num_layers=0)):
        with pytest.raises(ValueError):
            config(**bad)
    with pytest.raises(ValueError, match="unknown pQRNN config keys"):
        PQRNNConfig.from_dict(dict(json.loads(c.to_json()), bloom_size=3))
    assert PQRNNConfig.from_dict(json.loads(c.to_json())) == c


def test_both_input_forms_agree(data):
    codepoints, projection, mask = data
    assert min(mask.sum(1)) < T == max(mask.sum(1))
    model = PQRNN(config())
    a, b = outputs(model, codepoints, projection, mask)
    assert a["intent"].shape == (len(TEXTS), 5) and a["slots"].shape == (len(TEXTS), T, 7)
    for key in ("intent", "slots"):
        np.testing.assert_allclose(a[key], b[key], rtol=1e-4, atol=1e-5)
    assert not np.allclose(a["intent"][0], a["intent"][1])


def test_trimmed_batch_equals_full_batch(data):
    _, projection, mask = data
    model = PQRNN(config())
    t = int(mask.sum(1).max() - 1)
    cut = mask.copy()
    cut[:, t:] = 0
    proj = projection * cut[..., None].astype(np.int8)
    full = model({"projection": proj, "token_mask": cut})
    trimmed = model({"projection": proj[:, :t], "token_mask": cut[:, :t]})
    np.testing.assert_allclose(trimmed["intent"], full["intent"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(trimmed["slots"], full["slots"][:, :t], rtol=1e-4, atol=1e-5)


def test_both_input_forms_agree_after_quantized_training(data):
    codepoints, projection, mask = data
    model = PQRNN(config(zoneout=0.3, dropout=0.1), quantize=True)
    opt = keras.optimizers.Adam(0.01)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    intent = tf.constant([1, 2, 3, 4])
    before = model({"projection": projection, "token_mask": mask})["intent"].numpy()
    for _ in range(3):
        with tf.GradientTape() as tape:
            out = model({"projection": projection, "token_mask": mask}, training=True)
            loss = loss_fn(intent, out["intent"])
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
    a, b = outputs(model, codepoints, projection, mask)
    assert not np.allclose(a["intent"], before)
    for key in ("intent", "slots"):
        assert np.mean(np.isclose(a[key], b[key], atol=1e-4)) > 0.9, key


def test_set_quantize_reaches_the_qrnn_layers(data):
    _, projection, mask = data
    model = PQRNN(config())
    model({"projection": projection, "token_mask": mask})
    set_quantize(model, True)
    assert all(layer.quantize and layer.gates_forward.quantize and layer.gates_backward.quantize
               for layer in model.qrnn)
    assert len(model.qrnn) == 2 and model.qrnn[1].zoneout == 0.0


def test_zoneout_decays_per_layer():
    model = PQRNN(config(zoneout=0.5, num_layers=3))
    assert [layer.zoneout for layer in model.qrnn] == [0.5, 0.25, 0.125]


def test_subword_input_is_refused():
    model = PQRNN(config())
    with pytest.raises(ValueError, match="whole tokens"):
        model({"codepoints": tf.zeros([1, T, 2, 8], tf.int32)})


def test_export_model_matches_and_get_config_round_trips(data):
    codepoints, _, _ = data
    model = PQRNN(config(), name="pq")
    expect = model({"codepoints": codepoints})
    exported = export_model(model, codepoints.shape[1:], batch_size=len(TEXTS))
    intent, slots = exported(codepoints)
    np.testing.assert_allclose(intent.numpy(), expect["intent"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(slots.numpy(), expect["slots"].numpy(), rtol=1e-5, atol=1e-6)
    clone = PQRNN.from_config(model.get_config())
    assert clone.config == model.config and clone.name == "pq"


# -- the command-line path -------------------------------------------------------------------

TINY = ["--model=pqrnn", "--dataset=demo", "--languages=en,th", "--num_features=128",
        "--hidden_dim=32", "--state_dim=16", "--num_layers=2", "--zoneout=0.0",
        "--max_seq_len=16", "--batch_size=32", "--epochs=4", "--qat_epochs=1",
        "--learning_rate=0.01", "--warmup_steps=2", "--progress=false", "--distortion=0.05"]




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    model_dir = str(tmp_path_factory.mktemp("pqrnn") / "model")
    train_out = run_module("prado_tiny.train_main", f"--model_dir={model_dir}", *TINY)
    tflite = os.path.join(model_dir, "m.tflite")
    export_out = run_module("prado_tiny.export_main", f"--model_dir={model_dir}", f"--output={tflite}",
                     "--calibration_examples=64", "--parity_examples=200",
                     # 200 examples of a 4-epoch model: one flipped example is 0.5 points.
                     "--max_exact_match_drop=3")
    return model_dir, tflite, train_out, export_out


def test_cli_trains_a_pqrnn_on_whole_tokens(trained):
    model_dir, _, train_out, _ = trained
    with open(os.path.join(model_dir, "model.json"), encoding="utf-8") as f:
        spec = json.load(f)
    assert spec["model_type"] == "pqrnn" and spec["input"] == "codepoints"
    assert spec["config"]["num_features"] == 128 and spec["config"]["state_dim"] == 16
    assert spec["data"]["wordpiece_vocab_size"] == 0  # pQRNN hashes whole tokens
    assert spec["data"]["distortion"] == 0.05  # trained on distorted batches
    assert "pqrnn with" in train_out and "quantization-aware training from epoch 4" in train_out
    done = json.loads(train_out.split("prado-train: done ", 1)[1].splitlines()[0])
    # en + th demo data, 4 short epochs: the model has learned the intents.
    assert done["dev_intent_accuracy"] > 0.8, done


def test_cli_exports_builtin_int8_with_parity(trained):
    _, tflite, _, export_out = trained
    assert "int8 builtin ops only: yes" in export_out, export_out
    report = check_builtin_int8(tflite)
    assert report.ok, report.violations
    assert not [op for op in report.op_counts if "WHILE" in op]
    with open(tflite + ".json", encoding="utf-8") as f:
        parity = json.load(f)["parity"]
    assert parity["exact_match_drop"] <= 3.0, parity
    assert parity["intent_agreement"] >= 0.97, parity
    doc = read_metadata(tflite)
    assert doc["input"] == "codepoints" and doc["model_type"] == "pqrnn"


def test_predictor_and_eval_on_the_exported_pqrnn(trained, tmp_path):
    from prado_tiny.predictor import Predictor
    model_dir, tflite, _, _ = trained
    p = Predictor(tflite)
    r = p.predict("wake me up at 7 am")
    assert r.intent in read_metadata(tflite)["labels"]["intents"] and 0 < r.intent_score <= 1
    assert p.predict("ตั้งนาฬิกาปลุก 7 โมง").intent  # Thai
    metrics = tmp_path / "m.json"
    out = run_module("prado_tiny.eval_main", f"--model={tflite}", "--dataset=demo", "--split=dev",
              "--languages=en,th", f"--metrics_out={metrics}")
    assert "en" in out and "th" in out
    doc = json.loads(metrics.read_text(encoding="utf-8"))
    assert doc["examples"] > 0 and doc["bytes"] == os.path.getsize(tflite)
