"""Tests for prado_tiny.predictor: text in, intent and slots out of one .tflite file.

A tiny model with the exporter's contract is converted to int8 in a subprocess (module fixture).
It is a fixed function of the codepoints, so the expected labels are known:

* per token: a digit -> `I-time` (an I- after O: conlleval starts a chunk there), a `p` ->
  `B-place`, Devanagari -> `I-place`, a `q` -> `<unk>` (must be masked: `O` is second best),
  padding -> `B-time` (must be ignored);
* intent: `<unk>` if a `q` occurs (masked), else `alarm` (a digit) and `weather` (a `p`), each
  with logit +1.5 when present and -1.5 when not.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab
from prado_tiny.export.metadata import MetadataError, embed_metadata
from prado_tiny.predictor import EMPTY_MESSAGE, Prediction, Predictor
from test_metadata import run_python

ENCODER = TextEncoder(max_tokens=8, max_chars=6, max_pieces=3,
                      wordpiece=["wake", "me", "at", "in", "pa", "##ris", "7", "##30", "set",
                                 "we", "##ather", "##q"])
VOCAB = LabelVocab(["alarm", "weather"], ["B-place", "I-place", "B-time", "I-time"])

MAKE_MODEL = """
    import json, sys
    import numpy as np
    import tensorflow as tf, tf_keras as keras
    from prado_tiny.data.text_encoder import TextEncoder
    from prado_tiny.data.vocab import LabelVocab
    from prado_tiny.export.keras_converter import keras_converter

    out = sys.argv[1]
    enc = TextEncoder.from_config(json.loads(sys.argv[2]))
    vocab = LabelVocab.from_config(json.loads(sys.argv[3]))
    T, P, C = enc.max_tokens, enc.max_pieces, enc.max_chars

    def features(x):
        # [1, T, P, C] codepoints -> [1, T, 5]: digit, 'p', Devanagari, 'q', padding token.
        def any_of(mask):
            return tf.reduce_max(tf.cast(mask, tf.float32), axis=[2, 3])
        pad = 1.0 - tf.cast(tf.not_equal(x[:, :, 0, 0], 0), tf.float32)
        return tf.stack([any_of((x >= 48) & (x <= 57)), any_of(tf.equal(x, ord("p"))),
                         any_of((x >= 0x900) & (x <= 0x97F)), any_of(tf.equal(x, ord("q"))),
                         pad], axis=-1)

    def fixed_dense(n_out, weights, name):
        # weights: {label index: (per-feature weights, bias)}; everything else 0 with bias -1.
        w = np.zeros((5, n_out), np.float32)
        b = np.full((n_out,), -1.0, np.float32)
        for k, (wk, bk) in weights.items():
            w[:, k], b[k] = wk, bk
        layer = keras.layers.Dense(n_out, name=name)
        layer.build((None, None, 5))
        layer.set_weights([w, b])
        return layer

    s = {label: i for i, label in enumerate(vocab.slots.labels)}
    slot_w = {s["O"]: ([0, 0, 0, 0, 0], 1.0), s["<unk>"]: ([0, 0, 0, 3, 0], 0.0),
              s["B-place"]: ([0, 3, 0, 0, 0], -1.0), s["I-place"]: ([0, 0, 3, 0, 0], -1.0),
              s["I-time"]: ([3, 0, 0, 0, 0], -1.0), s["B-time"]: ([0, 0, 0, 0, 3], -1.0)}
    n = {label: i for i, label in enumerate(vocab.intents.labels)}
    intent_w = {n["<unk>"]: ([0, 0, 0, 4, 0], -2.0), n["alarm"]: ([3, 0, 0, 0, 0], -1.5),
                n["weather"]: ([0, 3, 0, 0, 0], -1.5)}

    inp = keras.Input((T, P, C), batch_size=1, dtype="int32")
    f = keras.layers.Lambda(features)(inp)
    slots = fixed_dense(vocab.num_slot_tags, slot_w, "slots")(f)
    pooled = keras.layers.Lambda(lambda t: tf.reduce_max(t, axis=1))(f)
    intent = fixed_dense(vocab.num_intents, intent_w, "intent")(pooled)
    model = keras.Model(inp, [intent, slots])

    texts = ["wake me at 7 30", "weather in paris", "paris दिल्ली at 7", "q test", "",
             "set alarm 7 in paris", "हिन्दी 42 q", "a b c d e f g h i j"]
    reps = [enc.encode_text(t).subwords[np.newaxis] for t in texts]
    with keras_converter(model) as conv:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([x] for x in reps * 8)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                          tf.lite.OpsSet.TFLITE_BUILTINS]
        conv.inference_output_type = tf.int8  # the int32 input stays int32
        with open(out, "wb") as fh:
            fh.write(conv.convert())
    print("made")
"""


def _document(outputs, **changes):
    doc = {"format": "prado-tiny-model", "version": 1, "model_type": "test",
           "text_encoder": ENCODER.get_config(), "input": "subwords",
           "labels": VOCAB.get_config(), "intent_mode": "joint", "intent_threshold": 0.5,
           "outputs": outputs}
    doc.update(changes)
    return doc


@pytest.fixture(scope="module")
def bare_model(tmp_path_factory):
    """The converted model without metadata, and its output names by role."""
    path = tmp_path_factory.mktemp("predictor") / "bare.tflite"
    assert "made" in run_python(MAKE_MODEL, str(path), json.dumps(ENCODER.get_config()),
                                json.dumps(VOCAB.get_config()))
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    names = {len(d["shape"]): d["name"] for d in it.get_output_details()}
    assert all(d["dtype"] == np.int8 for d in it.get_output_details())
    assert it.get_input_details()[0]["dtype"] == np.int32
    return path, {"intent": names[2], "slots": names[3]}


def _write(bare_model, tmp_path, name="model.tflite", **changes) -> str:
    path, outputs = bare_model
    doc = _document(changes.pop("outputs", outputs), **changes)
    target = tmp_path / name
    target.write_bytes(embed_metadata(path.read_bytes(), doc))
    return str(target)


@pytest.fixture(scope="module")
def predictor(bare_model, tmp_path_factory):
    return Predictor(_write(bare_model, tmp_path_factory.mktemp("p")))


def _slots(pred: Prediction):
    return [(s["slot"], s["text"], s["start"], s["end"]) for s in pred.slots]


def test_intent_slots_and_character_offsets(predictor):
    text = "  wake me at 7 30 in paris"
    r = predictor.predict(text)
    assert r.tokens == ["wake", "me", "at", "7", "30", "in", "paris"]
    assert r.offsets[0] == (2, 6) and not r.truncated
    # Two I-time tags after O form one chunk (conlleval), then B-place.
    assert r.tags == ["O", "O", "O", "I-time", "I-time", "O", "B-place"]
    assert _slots(r) == [("time", "7 30", 13, 17), ("place", "paris", 21, 26)]
    for s in r.slots:
        assert text[s["start"]:s["end"]] == s["text"] and 0.5 < s["score"] <= 1.0
    # Digit and 'p' both present: alarm and weather tie in the logits; either is fine, never <unk>.
    assert r.intent in ("alarm", "weather")
    assert [label for label, _ in r.intents] and all(label != "<unk>" for label, _ in r.intents)
    probs = [p for _, p in r.intents]
    assert probs == sorted(probs, reverse=True) and len(r.intents) == 2


def test_joint_intent_and_mixed_scripts(predictor):
    r = predictor.predict("wake me at 7")
    assert r.intent == "alarm" and r.intent_score > 0.8
    r = predictor.predict("weather in Paris दिल्ली")  # NFKC + lower-casing: 'P' -> 'p'
    assert r.intent == "weather"
    assert _slots(r) == [("place", "Paris दिल्ली", 11, 23)]
    # I-place straight after O still starts a chunk.
    r = predictor.predict("go दिल्ली now")
    assert r.tags == ["O", "I-place", "O"] and _slots(r) == [("place", "दिल्ली", 3, 9)]


def test_unk_is_never_predicted(predictor):
    # The model's most probable label is <unk> for the q tokens and for the intent.
    r = predictor.predict("q q in paris")
    assert r.tags == ["O", "O", "O", "B-place"]
    assert r.intent == "weather" and all(label != "<unk>" for label, _ in r.intents)


def test_padding_is_ignored(predictor):
    r = predictor.predict("hello")  # 7 padded positions predict B-time in the model
    assert r.tags == ["O"] and r.slots == []


def test_bad_input(predictor):
    for text in ("", "   ", "\t\n "):
        with pytest.raises(ValueError, match=EMPTY_MESSAGE):
            predictor.predict(text)
    for bad in (None, 42, b"bytes", ["list"]):
        with pytest.raises(TypeError):
            predictor.predict(bad)
    with pytest.raises(TypeError):
        predictor.predict_batch("a str, not a list")


def test_any_script_and_overlong_text(predictor):
    for text in ("ตั้งเวลาปลุก 7 โมง", "明天北京天气怎么样", "अलार्म सेट करो", "اضبط المنبه",
                 "👍🏽🎉 ok", "\u200b", "a\x00b", "\ud800 surrogate", "ｐａｒｉｓ"):
        r = predictor.predict(text)
        assert r.intent in ("alarm", "weather") and len(r.tags) == len(r.tokens)
        for s in r.slots:
            assert text[s["start"]:s["end"]] == s["text"]
    long = " ".join(["word"] * 9_999 + ["7"])
    r = predictor.predict(long)
    assert r.truncated and len(r.tokens) == 10_000 and r.tags[-1] == "O"
    assert not predictor.predict("one two three").truncated


def test_predict_batch_and_json(predictor):
    texts = ["wake me at 7", "weather in paris", "ตั้งเวลา 👍"]
    batch = predictor.predict_batch(texts)
    assert [b.as_dict() for b in batch] == [predictor.predict(t).as_dict() for t in texts]
    for b in batch:
        d = b.as_dict()
        assert json.loads(json.dumps(d, ensure_ascii=False)) == d


def test_multi_label_mode(bare_model, tmp_path):
    p = Predictor(_write(bare_model, tmp_path, intent_mode="multi_label"))
    r = p.predict("paris at 7")
    assert r.intent == "alarm#weather" and 0.5 <= r.intent_score < 1.0
    r = p.predict("hello")  # nothing passes the threshold: the most probable intent
    assert r.intent in ("alarm", "weather") and r.intent_score < 0.5


def test_outputs_found_by_shape_when_names_do_not_match(bare_model, tmp_path, predictor):
    p = Predictor(_write(bare_model, tmp_path, outputs={"intent": "nope", "slots": "gone"}))
    text = "wake me at 7 30 in paris"
    assert p.predict(text).as_dict() == predictor.predict(text).as_dict()


def test_missing_file_and_missing_metadata(bare_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.tflite"):
        Predictor(tmp_path / "nowhere.tflite")
    with pytest.raises(MetadataError, match="bare.tflite"):
        Predictor(bare_model[0])
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"")
    with pytest.raises(MetadataError, match="junk.tflite"):
        Predictor(junk)
    with pytest.raises(MetadataError, match="format"):
        Predictor(_write(bare_model, tmp_path, "f.tflite", format="other"))
    small = TextEncoder(max_tokens=4, max_chars=6, max_pieces=3, wordpiece=["a"])
    with pytest.raises(MetadataError, match="input 0"):
        Predictor(_write(bare_model, tmp_path, "s.tflite", text_encoder=small.get_config()))
    with pytest.raises(MetadataError, match=r"input 0 is int32\[1, 8, 3, 6\].*int32\[1, 8, 6\]"):
        Predictor(_write(bare_model, tmp_path, "c.tflite", input="codepoints"))
    with pytest.raises(MetadataError, match="intent_mode"):
        Predictor(_write(bare_model, tmp_path, "m.tflite", intent_mode="softmax"))


def test_no_tensorflow_import():
    code = ("import sys, prado_tiny.predictor; "
            "assert not any(m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras') "
            "for m in sys.modules), sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
