"""Tests for prado_tiny.layers.minhash_projection: NumPy, TF and TFLite features bit for bit."""
import hashlib
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prado_tiny.layers import hashing as H
from prado_tiny.layers import minhash_projection as M

REPO = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent

# Characters that a plain `st.text()` rarely draws: emoji sequences, combining marks, scripts
# without spaces, astral planes, the '#' of continuation pieces, the replacement character.
SPECIAL = ["\U0001F44D", "\U0001F3FD", "\u200d", "\U0001F468", "\U0001F1EB", "\U0001F1F7", "\ufe0f",
           "e", "\u0301", "\u0915", "\u094d", "\u0937", "\u0e15", "\u0e31", "\u0e49", "\u0e07",
           "\u5929", "\U0002070E", "\U0001D518", "#", "a", "\ufffd", "\U0010FFFF", " ", "\u0000"]
token_texts = st.one_of(st.text(max_size=30), st.text(st.sampled_from(SPECIAL), max_size=12),
                        st.sampled_from(["", "a", "ab", "abc", "##", "###", "the", "playing"]))


def encode(text: str, chars: int):
    return [ord(ch) for ch in text][:chars]


@st.composite
def piece_tensors(draw, batch=2, tokens=6, pieces=3, chars=8):
    """int32 [batch, tokens, pieces, chars] as the text front end lays out WordPiece pieces:
    a token's first piece, then '##' continuation pieces; long pieces cut at `chars`; more
    tokens and pieces than fit are dropped; an empty text is an all-padding token."""
    out = np.zeros((batch, tokens, pieces, chars), np.int32)
    for b in range(batch):
        seq = draw(st.lists(token_texts, max_size=tokens + 2))
        for t, text in enumerate(seq[:tokens]):
            cuts = sorted(draw(st.lists(st.integers(1, max(len(text) - 1, 1)), max_size=pieces - 1,
                                        unique=True))) if len(text) > 1 else []
            parts = [text[i:j] for i, j in zip([0] + cuts, cuts + [len(text)])]
            for p, part in enumerate(parts[:pieces]):
                row = encode(part if p == 0 else "##" + part, chars)
                out[b, t, p, :len(row)] = row
    return out


raw_int32 = st.lists(st.integers(-(2**31), 2**31 - 1) | st.just(0), min_size=2 * 4 * 2 * 5,
                     max_size=2 * 4 * 2 * 5).map(lambda v: np.array(v, np.int32).reshape(2, 4, 2, 5))


def _all_paths(x, **kw):
    """Features of `x` by the reference (the layer's own computation on NumPy), the vectorised
    host path and the cached featurizer; asserts they are equal and returns them."""
    num_hashes, n, m, w, seed = (kw.get("num_hashes", 64), kw.get("ngram_size", 3),
                                 kw.get("bloom_size", 256), kw.get("window", 1), kw.get("seed", 0))
    pieces = x.reshape((-1,) + x.shape[-2:]) if x.ndim == 4 else x.reshape(-1, 1, x.shape[-1])
    ref_fp = M.reference_fingerprints_np(pieces, num_hashes, n, seed)
    fast_fp = M.token_fingerprints_np(pieces, num_hashes, n, seed)
    assert np.array_equal(ref_fp, fast_fp)
    ref_b, ref_ne = H.minhash_buckets(H.NP, ref_fp, num_hashes, m, seed)
    fast_b, fast_ne = M.minhash_buckets_np(fast_fp, num_hashes, m, seed)
    assert np.array_equal(ref_ne, fast_ne)
    assert np.array_equal(ref_b[ref_ne == 1], fast_b[fast_ne == 1])
    feats = M.minhash_features_np(x, num_hashes, n, m, w, seed)
    cached = M.MinHashFeaturizer(num_hashes, n, m, w, seed)
    assert np.array_equal(cached.features(x), feats)
    assert np.array_equal(cached.features(x), feats)  # second pass: from the cache
    return feats


@settings(max_examples=60, deadline=None)
@given(piece_tensors(), st.sampled_from([1, 2, 3, 5]), st.integers(0, 2**40))
def test_numpy_paths_agree_on_any_text(x, n, seed):
    feats = _all_paths(x, ngram_size=n, seed=seed, bloom_size=300, window=2)
    assert feats.shape == (2, 6, 5 * 300)
    # Counts: every non-empty token writes num_hashes counts into its own block.
    own = feats[..., 2 * 300:3 * 300].sum(axis=-1)
    assert set(np.unique(own)) <= {0, 64}
    assert np.array_equal(own == 0, ~(x > 0).any(axis=(2, 3)) | (own == 0))


@settings(max_examples=30, deadline=None)
@given(raw_int32)
def test_numpy_paths_agree_on_arbitrary_int32(x):
    _all_paths(x, bloom_size=97, window=1)


def test_padding_tokens_and_pieces_give_zero_features():
    x = np.zeros((1, 5, 2, 6), np.int32)
    x[0, 1, 0, :3] = [104, 105, 33]  # token 1 only; tokens 0, 2.. are padding
    x[0, 3, 1, :4] = [35, 35, 105, 110]  # a token whose first piece is padding
    feats = M.minhash_features_np(x, bloom_size=64, window=0)
    assert feats[0, [0, 2, 4]].sum() == 0
    assert feats[0, 1].sum() == 64 and feats[0, 3].sum() == 64
    # A padding piece adds nothing to its token's min.
    y = x.copy()
    y[0, 1, 1] = 0
    assert np.array_equal(M.minhash_fingerprints_np(x)[0, 1], M.minhash_fingerprints_np(y)[0, 1])
    # Window blocks beyond the sequence are zeros.
    w = M.minhash_features_np(x, bloom_size=64, window=1)
    assert w[0, 0, :64].sum() == 0 and w[0, 4, 128:].sum() == 0
    assert np.array_equal(w[0, 2, :64], feats[0, 1]) and np.array_equal(w[0, 0, 128:], feats[0, 1])


def test_fingerprint_does_not_depend_on_row_width_or_piece_count():
    word = [ord(c) for c in "tokenization"]
    narrow = np.zeros((1, 1, 12), np.int32)
    narrow[0, 0] = word
    wide = np.zeros((1, 4, 40), np.int32)
    wide[0, 0, :12] = word
    assert np.array_equal(M.token_fingerprints_np(narrow), M.token_fingerprints_np(wide))
    feat = M.MinHashFeaturizer()
    assert np.array_equal(feat.fingerprints(narrow[None]), feat.fingerprints(wide[None]))
    assert feat.hits == 1 and feat.misses == 1


def test_similar_tokens_share_buckets():
    def buckets(word):
        x = np.zeros((1, 1, 16), np.int32)
        x[0, 0, :len(word)] = [ord(c) for c in word]
        return set(M.minhash_buckets_np(M.token_fingerprints_np(x))[0][0])

    near = len(buckets("playing") & buckets("played"))
    far = len(buckets("playing") & buckets("zebra"))
    assert near > 12 and far < 12  # J(playing, played) = 2/7: ~18 of 64; unrelated: ~4 by chance


def test_short_and_continuation_pieces_are_hashed_whole():
    def fp(*rows):
        x = np.zeros((1, len(rows), 10), np.int32)
        for i, r in enumerate(rows):
            x[0, i, :len(r)] = [ord(c) for c in r]
        return M.token_fingerprints_np(x)[0]

    # A later piece is one element, the piece hashed whole, like a first piece with '##'.
    assert np.array_equal(fp("play", "##ing"), np.minimum(fp("play"), fp("##ing")))
    # ...not the min over its n-grams.
    grams = np.minimum.reduce([fp("##i"), fp("#in"), fp("ing")])
    assert not np.array_equal(fp("##ing"), grams)
    # A first piece of n chars has one n-gram, which hashes like the piece hashed whole.
    assert np.array_equal(fp("ab", "abc"), np.minimum(fp("ab"), fp("abc")))
    # A token's fingerprint is the element-wise min over its pieces.
    assert np.array_equal(fp("token", "##iz", "##ation"),
                          np.minimum.reduce([fp("token"), fp("##iz"), fp("##ation")]))


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        M.minhash_features_np(np.zeros((1, 2, 3), np.int32), num_hashes=200)
    with pytest.raises(ValueError):
        M.minhash_features_np(np.zeros((1, 2, 3), np.int32), window=-1)
    with pytest.raises(TypeError):
        M.minhash_features_np(np.zeros((1, 2, 3), np.float32))


# ---------------------------------------------------------------------------------------------
# TensorFlow (eager, in process).

@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf
    return tf


@settings(max_examples=20, deadline=None)
@given(piece_tensors(batch=2, tokens=5, pieces=3, chars=7), st.sampled_from([0, 1, 2]),
       st.sampled_from([2, 3]), st.booleans())
def test_layer_matches_numpy(tf, x, window, n, rank3):
    if rank3:
        x = x[:, :, 0, :]
    layer = M.MinHashProjection(num_hashes=32, ngram_size=n, bloom_size=128, window=window, seed=9)
    y = layer(tf.constant(x)).numpy()
    ref = M.minhash_features_np(x, 32, n, 128, window, 9)
    assert y.dtype == np.float32 and np.array_equal(y, ref)
    yi = M.MinHashProjection(num_hashes=32, ngram_size=n, bloom_size=128, window=window, seed=9,
                             int_output=True)(tf.constant(x)).numpy()
    assert yi.dtype == np.int32 and np.array_equal(yi, ref.astype(np.int32))


def test_bloom_features_from_cached_buckets(tf):
    x = _fixed_input()
    feat = M.MinHashFeaturizer(bloom_size=256, window=2)
    buckets, nonempty = feat.buckets(x)
    dense = M.bloom_features_tf(buckets.astype(np.int16), nonempty, 256, 2).numpy()
    assert np.array_equal(dense, M.minhash_features_np(x, bloom_size=256, window=2))


def test_layer_config_and_model_roundtrip(tf):
    import tf_keras as keras
    layer = M.MinHashProjection(num_hashes=16, ngram_size=2, bloom_size=64, window=2, seed=5,
                                int_output=True, name="proj")
    config = layer.get_config()
    for key, value in dict(num_hashes=16, ngram_size=2, bloom_size=64, window=2, seed=5,
                           int_output=True).items():
        assert config[key] == value
    clone = M.MinHashProjection.from_config(config)
    x = np.zeros((1, 3, 2, 5), np.int32)
    x[0, 0, 0, :3] = [97, 98, 99]
    assert np.array_equal(clone(tf.constant(x)).numpy(), layer(tf.constant(x)).numpy())
    inp = keras.Input((3, 2, 5), dtype="int32")
    model = keras.Model(inp, layer(inp))
    again = keras.Model.from_config(model.get_config())
    assert np.array_equal(again(x).numpy(), model(x).numpy())
    assert layer.compute_output_shape((None, 3, 2, 5)) == (None, 3, 5 * 64)


# ---------------------------------------------------------------------------------------------
# Fresh process, and TFLite (conversions run in a subprocess: converter crashes stay there).

def _run(code: str, timeout: int = 240) -> str:
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(REPO), str(HERE), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=env, cwd=str(REPO))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


FIXED = ["set an alarm for 7 pm", "Wetter in München ☀️", "ตั้งเวลา", "👍🏽 ok", "天气", ""]


def _fixed_input():
    x = np.zeros((len(FIXED), 6, 12), np.int32)
    for i, text in enumerate(FIXED):
        for t, tok in enumerate(text.split()[:6]):
            row = encode(tok, 12)
            x[i, t, :len(row)] = row
    return x


def test_same_features_in_a_fresh_process():
    here = hashlib.sha256(M.minhash_features_np(_fixed_input(), seed=3).tobytes()).hexdigest()
    out = _run("""
        import hashlib
        import test_minhash_projection as T
        from prado_tiny.layers import minhash_projection as M
        print(hashlib.sha256(M.minhash_features_np(T._fixed_input(), seed=3).tobytes()).hexdigest())
    """)
    assert out.split()[-1] == here


TFLITE_CHECK = """
    import json, os
    import numpy as np
    import tensorflow as tf, tf_keras as keras
    from hypothesis import given, settings, strategies as st
    import test_minhash_projection as T
    from prado_tiny.layers import minhash_projection as M
    from prado_tiny.export.inspect import check_builtin_int8
    from prado_tiny.export.tflite import convert as export_convert
    from ai_edge_litert.interpreter import Interpreter

    B, TOK, P, C = 2, 6, 3, 8
    KW = dict(num_hashes=64, ngram_size=3, bloom_size=128, window=1, seed=1)

    def convert(model):  # prado-export's conversion, on random padded words
        rng = np.random.default_rng(0)
        samples = []
        for _ in range(16):
            x = np.zeros((B, TOK, P, C), np.int32)
            x[:, :rng.integers(1, TOK + 1), 0, :rng.integers(1, C + 1)] = rng.integers(97, 123)
            samples.append(x)
        return export_convert(model, samples)

    inp = keras.Input((TOK, P, C), batch_size=B, dtype="int32")
    proj = M.MinHashProjection(**KW)
    feats = proj(inp)
    with_dense = convert(keras.Model(inp, keras.layers.Dense(16)(feats)))
    only = convert(keras.Model(inp, feats))
    report = check_builtin_int8(with_dense)
    print(json.dumps({"ok": report.ok, "violations": report.violations,
                      "ops": report.op_counts, "inputs": [str(t) for t in report.inputs],
                      "outputs": [str(t) for t in report.outputs],
                      "proj_ok": check_builtin_int8(only).ok}))

    it = Interpreter(model_content=only)
    it.allocate_tensors()
    inp_d, out_d = it.get_input_details()[0], it.get_output_details()[0]
    assert out_d["dtype"] == np.int8 and out_d["quantization"] == (1.0, 0), out_d

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.one_of(T.piece_tensors(B, TOK, P, C), T.raw_int32.map(
        lambda r: np.pad(r, [(0, 0), (0, TOK - 4), (0, P - 2), (0, C - 5)]))))
    def check(x):
        it.set_tensor(inp_d["index"], x)
        it.invoke()
        got = it.get_tensor(out_d["index"])
        want = M.minhash_features_np(x, **KW)
        assert np.array_equal(got.astype(np.int32), want.astype(np.int32))

    check()
    print("checked")
"""


@pytest.fixture(scope="module")
def tflite_run():
    out = _run(TFLITE_CHECK)
    lines = out.strip().splitlines()
    assert lines[-1] == "checked"
    return json.loads(lines[-2])


def test_tflite_model_is_builtin_int8(tflite_run):
    assert tflite_run["ok"], tflite_run["violations"]
    assert tflite_run["proj_ok"]
    assert tflite_run["inputs"] == ["int32[2x6x3x8]"]
    assert tflite_run["outputs"][0].startswith("int8[2x6x16]")
    assert "FULLY_CONNECTED" in tflite_run["ops"] and "CAST" in tflite_run["ops"]
    assert "QUANTIZE" not in tflite_run["ops"] and "DEQUANTIZE" not in tflite_run["ops"]


def test_tflite_features_equal_numpy_bit_for_bit(tflite_run):
    # The subprocess ran a hypothesis property over text and raw int32 through the interpreter.
    assert tflite_run is not None
