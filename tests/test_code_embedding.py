"""Tests for prado_tiny.layers.code_embedding: compositional codes learned straight through,
frozen as integers, packed in bytes, looked up with builtin integer ops in the .tflite."""
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.export.inspect import check_builtin_int8
from prado_tiny.export.tflite import convert
from prado_tiny.layers.code_embedding import CodeEmbedding, code_table_bytes, codes_per_byte


def built(**kwargs):
    args = dict(vocab_size=40, dim=6, num_codebooks=5, codebook_size=4)
    args.update(kwargs)
    emb = CodeEmbedding(**args)
    emb(tf.zeros([1, 1, 1], tf.int32))
    return emb


def test_frozen_lookup_is_the_sum_of_codewords_and_padding_adds_nothing():
    emb = built()
    emb.freeze()
    codes, books = emb.codes.numpy(), emb.codebooks.numpy()
    ids = tf.constant([[[2, 3, 0], [39, 0, 0], [0, 0, 0]]])
    out = emb(ids).numpy()

    def row(i):
        return sum(books[m * 4 + codes[i, m]] for m in range(5))
    np.testing.assert_allclose(out[0, 0], row(2) + row(3), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[0, 1], row(39), rtol=1e-5, atol=1e-6)
    assert np.all(out[0, 2] == 0)


def test_learned_codes_choose_the_logits_argmax_and_freeze_keeps_them():
    emb = built()
    ids = tf.constant([[[5, 7], [9, 0]]])
    before = emb(ids).numpy()  # inference before freezing: the logits' argmax
    emb.freeze()
    np.testing.assert_array_equal(emb.codes.numpy(), np.argmax(emb.code_logits.numpy(), -1))
    np.testing.assert_allclose(emb(ids).numpy(), before, rtol=1e-5, atol=1e-6)
    # Frozen once: later changes of the logits do not move the codes.
    emb.code_logits.assign(-emb.code_logits)
    emb.freeze()
    assert not np.array_equal(emb.codes.numpy(), np.argmax(emb.code_logits.numpy(), -1))


def test_straight_through_gradient_reaches_logits_and_codebooks_only_of_used_rows():
    emb = built()
    ids = tf.constant([[[2, 3], [1, 0]]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(emb(ids, training=True) ** 2)
    g_logits, g_books = tape.gradient(loss, [emb.code_logits, emb.codebooks])
    g_logits = tf.convert_to_tensor(g_logits).numpy()
    assert np.abs(g_logits[[1, 2, 3]]).sum() > 0 and np.all(g_logits[[0, 4, 5]] == 0)
    assert np.abs(tf.convert_to_tensor(g_books).numpy()).sum() > 0
    # Frozen: the codes are integers, only the codebooks learn.
    emb.freeze()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(emb(ids, training=True) ** 2)
    g_logits, g_books = tape.gradient(loss, [emb.code_logits, emb.codebooks])
    assert g_logits is None and g_books is not None


def test_quantize_switch_freezes():
    emb = built()
    assert int(emb.frozen.numpy()) == 0
    emb.quantize = True
    assert int(emb.frozen.numpy()) == 1 and emb.output_quant.quantize


@pytest.mark.parametrize("k,per", [(2, 8), (4, 4), (16, 2), (17, 1), (256, 1)])
def test_packing_round_trips(k, per):
    assert codes_per_byte(k) == per
    emb = built(num_codebooks=7, codebook_size=k)
    rng = np.random.default_rng(k)
    codes = rng.integers(0, k, (40, 7)).astype(np.int32)
    emb.codes.assign(codes)
    emb.frozen.assign(1)
    assert emb.packed_codes().shape == (40, -(-7 // per))
    ids = tf.constant(np.arange(40, dtype=np.int32).reshape(1, 40, 1))
    np.testing.assert_array_equal(emb._unpacked(ids).numpy()[0, :, 0], codes)


def test_table_bytes():
    b = code_table_bytes(vocab_size=8002, num_codebooks=8, codebook_size=16, dim=128)
    assert b["codes"] == 8002 * 4 and b["codebooks"] == 8 * 16 * 128
    assert b["float32_table"] == 8002 * 128 * 4 and b["int8_table"] == 8002 * 128
    assert 1 - b["total"] / b["float32_table"] > 0.974


def test_int8_tflite_stores_packed_codes_and_matches_keras():
    emb = built(vocab_size=300, dim=16, num_codebooks=8, codebook_size=16, quantize=True)
    inp = keras.Input((8, 3), batch_size=1, dtype="int32")
    model = keras.Model(inp, emb(inp))
    rng = np.random.default_rng(1)
    samples = [rng.integers(0, 300, (1, 8, 3)).astype(np.int32) for _ in range(30)]
    data = convert(model, samples)
    report = check_builtin_int8(data)
    assert report.ok, report.violations
    assert report.op_counts.get("GATHER") == 2 and "FLOOR_MOD" in report.op_counts
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_content=data)
    it.allocate_tensors()
    packed = [d for d in it.get_tensor_details() if list(d["shape"]) == [300, 4]]
    assert packed and packed[0]["dtype"] == np.uint8  # two 4-bit codes per byte
    out = it.get_output_details()[0]
    for x in samples[:5]:
        it.set_tensor(it.get_input_details()[0]["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"]).astype(np.float32)
        scale, zero = out["quantization"]
        y = (y - zero) * scale
        ref = emb(x).numpy()
        assert np.abs(y - ref).max() <= 2 * scale + 1e-6, (np.abs(y - ref).max(), scale)


def test_validation_and_config():
    for bad in (dict(vocab_size=1), dict(codebook_size=1), dict(codebook_size=257),
                dict(num_codebooks=0), dict(temperature=0.0)):
        with pytest.raises(ValueError):
            CodeEmbedding(**dict(dict(vocab_size=9, dim=4), **bad))
    with pytest.raises(ValueError, match="built layer"):
        CodeEmbedding(9, 4).freeze()
    emb = CodeEmbedding(9, 4, num_codebooks=3, codebook_size=8, temperature=0.5, quantize=True,
                        name="e")
    clone = CodeEmbedding.from_config(emb.get_config())
    assert clone.get_config() == emb.get_config()
    assert keras.utils.get_registered_object("prado_tiny>CodeEmbedding") is CodeEmbedding
