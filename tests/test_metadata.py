"""Tests for prado_tiny.export.metadata: a JSON document inside a .tflite flatbuffer.

The models are converted in one subprocess (a converter crash stays there, ../shared/STACK.md);
embedding and reading need no TensorFlow and run here.
"""
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest

from prado_tiny.export import metadata as M

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str, timeout: int = 240) -> str:
    """Runs `code` in a fresh Python with Keras 2 and the repository importable; returns stdout.

    Shared by the tests that convert models (`from test_metadata import run_python`).
    """
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=timeout, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


MAKE_MODELS = """
    import os, sys
    import numpy as np
    import tensorflow as tf, tf_keras as keras

    out = sys.argv[1]
    rng = np.random.default_rng(0)
    inp = keras.Input((8,), batch_size=1)
    model = keras.Model(inp, keras.layers.Dense(4)(keras.layers.Dense(64, activation="relu")(inp)))

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [rng.normal(size=(1, 8)).astype(np.float32)] for _ in range(64))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with open(os.path.join(out, "int8.tflite"), "wb") as f:
        f.write(conv.convert())

    # Weights stored after the flatbuffer, by offset (what the converter does past 2 GB).
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv._experimental_use_buffer_offset = True
    with open(os.path.join(out, "offsets.tflite"), "wb") as f:
        f.write(conv.convert())
    print("made")
"""

DOC = {"format": "prado-tiny-model", "version": 1,
       "labels": {"intents": ["<unk>", "ตั้งนาฬิกาปลุก", "अलार्म_सेट"]},
       "note": "Thai ตั้งเวลา, Hindi अलार्म, emoji ⏰", "threshold": 0.5, "nested": [1, [2, None]]}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    out = tmp_path_factory.mktemp("tflite")
    assert "made" in run_python(MAKE_MODELS, str(out))
    return out


def _run(data: bytes, x: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


def _inputs(dtype, n=16):
    rng = np.random.default_rng(1)
    if dtype == np.int8:
        return [rng.integers(-128, 128, size=(1, 8)).astype(np.int8) for _ in range(n)]
    return [rng.normal(size=(1, 8)).astype(np.float32) for _ in range(n)]


def test_roundtrip_with_non_ascii_text_and_identical_outputs(models, tmp_path):
    data = (models / "int8.tflite").read_bytes()
    out = M.embed_metadata(data, DOC)
    assert isinstance(out, bytes)
    assert M.read_metadata(out) == DOC
    path = tmp_path / "with_metadata.tflite"
    path.write_bytes(out)
    assert M.read_metadata(path) == DOC and M.read_metadata(str(path)) == DOC
    # Stored as zlib-compressed UTF-8 JSON with sorted keys, not \\u escapes.
    text = json.dumps(DOC, ensure_ascii=False, sort_keys=True).encode("utf-8")
    assert zlib.compress(text, 9) in out and text not in out
    # The converter's own entries are kept, ours is added.
    assert M.metadata_names(out) == M.metadata_names(data) + [M.METADATA_NAME]
    for x in _inputs(np.int8):
        assert np.array_equal(_run(data, x), _run(out, x))


def test_plain_json_is_written_on_request_and_read_either_way(models):
    data = (models / "int8.tflite").read_bytes()
    plain = M.embed_metadata(data, DOC, compress=False)
    assert json.dumps(DOC, ensure_ascii=False, sort_keys=True).encode("utf-8") in plain
    assert M.read_metadata(plain) == DOC
    # A large, repetitive document (a WordPiece vocabulary) shrinks to a fraction.
    vocab = {"pieces": [f"##piece{i}" for i in range(3000)]}
    small, big = M.embed_metadata(data, vocab), M.embed_metadata(data, vocab, compress=False)
    assert M.read_metadata(small) == M.read_metadata(big) == vocab
    assert len(big) - len(small) > 0.6 * len(json.dumps(vocab))


def test_internal_tensor_names_can_be_dropped(models):
    from ai_edge_litert.interpreter import Interpreter
    data = (models / "int8.tflite").read_bytes()
    named = M.embed_metadata(data, DOC)
    bare = M.embed_metadata(data, DOC, keep_tensor_names=False)
    assert len(bare) < len(named)
    a, b = Interpreter(model_content=named), Interpreter(model_content=bare)
    # Inputs and outputs keep their names (apps find them by name); the rest are blank.
    for get in ("get_input_details", "get_output_details"):
        assert [d["name"] for d in getattr(a, get)()] == [d["name"] for d in getattr(b, get)()]
    io = {d["index"] for d in b.get_input_details() + b.get_output_details()}
    assert all(d["name"] == "" for d in b.get_tensor_details() if d["index"] not in io)
    assert any(d["name"] for d in a.get_tensor_details() if d["index"] not in io)
    assert M.read_metadata(bare) == DOC
    for x in _inputs(np.int8, 4):
        assert np.array_equal(_run(data, x), _run(bare, x))


def test_reembedding_replaces_the_entry(models):
    data = (models / "int8.tflite").read_bytes()
    once = M.embed_metadata(data, DOC)
    twice = M.embed_metadata(once, {"version": 2, "text": "ใหม่"})
    assert M.read_metadata(twice) == {"version": 2, "text": "ใหม่"}
    assert M.metadata_names(twice).count(M.METADATA_NAME) == 1
    assert "ตั้งนาฬิกาปลุก".encode("utf-8") not in twice  # the old buffer is gone
    # Replacing does not grow the file: same document, same size.
    assert len(M.embed_metadata(once, DOC)) == len(once)
    for x in _inputs(np.int8, 4):
        assert np.array_equal(_run(data, x), _run(twice, x))


def test_buffers_stored_by_offset_are_kept(models):
    data = (models / "offsets.tflite").read_bytes()
    from ai_edge_litert import schema_py_generated as schema
    m = schema.Model.GetRootAsModel(data, 0)
    assert any(m.Buffers(i).Offset() > 1 for i in range(m.BuffersLength())), "no offset buffers"
    out = M.embed_metadata(data, DOC)
    assert M.read_metadata(out) == DOC
    for x in _inputs(np.float32, 8):
        assert np.array_equal(_run(data, x), _run(out, x))


def test_weights_stay_16_byte_aligned(models):
    from ai_edge_litert import schema_py_generated as schema
    out = M.embed_metadata((models / "int8.tflite").read_bytes(), DOC)
    m = schema.Model.GetRootAsModel(out, 0)
    for i in range(m.BuffersLength()):
        buf = m.Buffers(i)
        if buf.DataLength():
            start = buf._tab.Vector(buf._tab.Offset(4))
            assert start % 16 == 0, (i, start)


def test_errors_name_the_file(models, tmp_path):
    missing = tmp_path / "nope.tflite"
    with pytest.raises(M.MetadataError, match="nope.tflite.*not found"):
        M.read_metadata(missing)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a flatbuffer at all")
    with pytest.raises(M.MetadataError, match="junk.tflite.*not a TFLite flatbuffer"):
        M.read_metadata(junk)
    with pytest.raises(M.MetadataError, match="int8.tflite.*no 'prado_tiny' metadata"):
        M.read_metadata(models / "int8.tflite")
    with pytest.raises(M.MetadataError, match="not a TFLite flatbuffer"):
        M.embed_metadata(b"\x00" * 64, DOC)
    assert issubclass(M.MetadataError, ValueError)


def test_invalid_json_and_bad_documents(models, tmp_path):
    data = (models / "int8.tflite").read_bytes()
    # Corrupt our JSON in place (same length) to get metadata that is not JSON.
    good = M.embed_metadata(data, {"k": "vvvv"}, compress=False)
    payload = json.dumps({"k": "vvvv"}, ensure_ascii=False, sort_keys=True).encode()
    assert good.count(payload) == 1
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(good.replace(payload, b"{" * len(payload)))
    with pytest.raises(M.MetadataError, match="bad.tflite.*not valid UTF-8 JSON"):
        M.read_metadata(bad)
    # Neither JSON nor a zlib stream.
    squashed = zlib.compress(payload, 9)
    compressed = M.embed_metadata(data, {"k": "vvvv"})
    assert compressed.count(squashed) == 1
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(compressed.replace(squashed, b"x" * len(squashed)))
    with pytest.raises(M.MetadataError, match="broken.tflite.*neither JSON nor zlib"):
        M.read_metadata(broken)
    with pytest.raises(TypeError):
        M.embed_metadata(data, ["not", "a", "dict"])
    with pytest.raises(ValueError):
        M.embed_metadata(data, {"x": float("nan")})
