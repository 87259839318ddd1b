"""Tests for prado_tiny.models.pqrnn_matt: config, shapes and input forms, step path = teacher
forcing, causality, the loss, quantization, and a tiny model that learns demo parses and decodes
them greedily and with (constrained) beam search."""
import dataclasses
import doctest
import json
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from prado_tiny.data import demo
from prado_tiny.data.parse import canonical
from prado_tiny.data.seq2seq_targets import OutputVocab
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.layers.fake_quant import set_quantize
from prado_tiny.layers.ternary_projection import TernaryFeaturizer
import prado_tiny.models.pqrnn_matt as pqrnn_matt
from prado_tiny.models.pqrnn_matt import (KerasStepper, PQRNNEncoder, PQRNNMAtt, PQRNNMAttConfig,
                                          QuantEmbedding, beam_search, greedy_decode,
                                          sequence_loss)

S, F, T = 12, 64, 16  # source tokens, projection features, target positions
TEXTS = [["set", "an", "alarm", "for", "7", "am"], ["hi"],
         ["remind", "me", "to", "call", "mom", "at", "noon", "on", "friday", "please"]]


def config(**kwargs):
    args = dict(output_vocab_size=20 + S, pointer_offset=20, max_seq_len=S, num_features=F,
                bottleneck_dim=16, state_dim=8, num_layers=1, max_target_len=T, hidden_dim=16,
                num_decoder_layers=2, num_heads=2, ff_dim=24)
    args.update(kwargs)
    return PQRNNMAttConfig(**args)


def encoder_inputs(token_lists, max_tokens=S, num_features=F):
    codepoints = TextEncoder(max_tokens=max_tokens, max_chars=12).encode_tokens_batch(token_lists)
    projection = TernaryFeaturizer(num_features).features(codepoints, np.int8)
    mask = (codepoints[..., 0] != 0).astype(np.int32)
    return codepoints, projection, mask


def randomize(model, seed=0, scale=0.3):
    """Non-zero weights everywhere (biases, LayerNorm betas), so no leak hides behind a zero."""
    rng = np.random.default_rng(seed)
    for w in model.trainable_weights:
        offset = 1.0 if "gamma" in w.name else 0.0
        w.assign(rng.normal(0, scale, w.shape).astype(np.float32) + offset)


@pytest.fixture(scope="module")
def data():
    return encoder_inputs(TEXTS)


def decoder_ids(seed, batch, length, vocab_size=20 + S):
    return np.random.default_rng(seed).integers(1, vocab_size, (batch, length)).astype(np.int32)


def test_docstring_examples():
    assert doctest.testmod(pqrnn_matt, extraglobs={"tf": tf}).failed == 0


def test_config_round_trip_and_validation():
    c = config(zoneout=0.2, dropout=0.1, decoder_dropout=0.1, label_smoothing=0.2)
    assert PQRNNMAttConfig.from_dict(json.loads(c.to_json())) == c
    assert PQRNNMAttConfig.from_dict(json.loads(config(pointer_offset=None).to_json())) \
        .pointer_offset is None
    with pytest.raises(ValueError, match="unknown pQRNN-MAtt config keys"):
        PQRNNMAttConfig.from_dict(dict(json.loads(c.to_json()), num_intents=3))
    for bad in (dict(hidden_dim=0), dict(num_heads=3), dict(label_smoothing=1.0),
                dict(zoneout=-0.1), dict(pointer_offset=19), dict(mask_penalty=0.0),
                dict(num_decoder_layers=0)):
        with pytest.raises(ValueError):
            config(**bad)
    vocab = OutputVocab.build(["[IN:A [SL:B x ] ]", "[IN:C ]"], max_source_len=S)
    v = PQRNNMAttConfig.for_vocab(vocab, hidden_dim=8, num_heads=2)
    assert (v.output_vocab_size, v.pointer_offset, v.max_seq_len, v.hidden_dim) == \
        (vocab.size, vocab.pointer_offset, S, 8)
    model = PQRNNMAtt(c, name="s2s")
    clone = PQRNNMAtt.from_config(model.get_config())
    assert clone.config == c and clone.name == "s2s"
    for layer in (PQRNNEncoder(F, 8, 4, 2, zoneout=0.5, quantize=True, name="e"),
                  QuantEmbedding(5, 3, stddev=0.2, quantize=True)):
        assert type(layer).from_config(layer.get_config()).get_config() == layer.get_config()


def test_shapes_and_both_input_forms(data):
    codepoints, projection, mask = data
    model = PQRNNMAtt(config())
    ids = decoder_ids(0, 3, 7)
    a = model({"codepoints": codepoints, "decoder_inputs": ids}).numpy()
    b = model({"projection": projection, "token_mask": mask, "decoder_inputs": ids}).numpy()
    assert a.shape == (3, 7, 20 + S)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    states, enc_mask = model.encode({"codepoints": codepoints})
    assert states.shape == (3, S, 16) and enc_mask.shape == (3, S, 1)
    np.testing.assert_array_equal(enc_mask.numpy()[..., 0], mask)
    cache = model.decoder_cache({"codepoints": codepoints})
    assert len(cache["keys"]) == len(cache["values"]) == 2
    assert cache["keys"][0].shape == cache["pointer_keys"].shape == (3, S, 16)
    # A batch cut to its longest example (training batches) gives the same logits, and pointers
    # beyond each source sit at the mask penalty below the rest.
    n = int(mask.sum(1).max())
    cut = model({"projection": projection[:, :n], "token_mask": mask[:, :n],
                 "decoder_inputs": ids}).numpy()
    np.testing.assert_allclose(cut, b, rtol=1e-4, atol=1e-4)
    # Dynamic batch, source and target lengths, as the Trainer's traced step sees them.
    dynamic = tf.function(lambda p, m, d: model({"projection": p, "token_mask": m,
                                                 "decoder_inputs": d}),
                          input_signature=[tf.TensorSpec([None, None, F], tf.int8),
                                           tf.TensorSpec([None, None], tf.int32),
                                           tf.TensorSpec([None, None], tf.int32)])
    np.testing.assert_allclose(dynamic(projection[:, :n], mask[:, :n], ids).numpy(), b,
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="max_target_len"):
        model({"codepoints": codepoints, "decoder_inputs": decoder_ids(0, 3, T + 1)})
    # Without pointer scores the output projection alone scores the pointers.
    plain = PQRNNMAtt(config(pointer_offset=None))
    assert plain({"codepoints": codepoints, "decoder_inputs": ids}).shape == (3, 7, 20 + S)
    assert not any("pointer" in w.name for w in plain.weights)


def test_pointer_scores_follow_the_source_content(data):
    codepoints, projection, mask = data
    model = PQRNNMAtt(config())
    model.ensure_built()
    randomize(model, seed=1)
    ids = decoder_ids(1, 3, 5)
    base = model({"projection": projection, "token_mask": mask, "decoder_inputs": ids}).numpy()
    changed = projection.copy()
    changed[0, 4] = -changed[0, 4]  # "7" of example 0 becomes another token
    out = model({"projection": changed, "token_mask": mask, "decoder_inputs": ids}).numpy()
    assert np.abs(out[0] - base[0]).max() > 1e-3
    np.testing.assert_allclose(out[1:], base[1:], atol=1e-5)  # other examples untouched
    # Pointers beyond the source: lower than any real pointer by about the penalty.
    off = model.config.pointer_offset
    beyond = base[1, :, off + 1:]  # example 1 has one token
    assert beyond.max() < base[1, :, off:off + 1].min() + 1.0


def test_step_path_equals_teacher_forcing(data):
    codepoints, projection, mask = data
    model = PQRNNMAtt(config())
    model.ensure_built()
    randomize(model, seed=2)
    ids = decoder_ids(2, 3, T)
    full = model({"codepoints": codepoints, "decoder_inputs": ids}).numpy()
    cache = model.decoder_cache({"codepoints": codepoints})
    state = model.initial_state(3)
    steps = []
    for t in range(T):
        logits, state = model.decoder_step(ids[:, t], state, cache)
        steps.append(logits.numpy()[:, 0])
        np.testing.assert_array_equal(state["count"].numpy().ravel(), [t + 1] * 3)
    np.testing.assert_allclose(np.stack(steps, 1), full, rtol=1e-4, atol=1e-4)
    # The compiled stepper used by the searches gives the same numbers.
    stepper = KerasStepper(model)
    cache_np, state_np, num_source = stepper.start({"projection": projection, "token_mask": mask})
    np.testing.assert_array_equal(num_source, mask.sum(1))
    for t in range(4):
        logits, state_np = stepper.step(ids[:, t], state_np, cache_np)
        np.testing.assert_allclose(logits, full[:, t], rtol=1e-4, atol=1e-4)


def test_position_t_never_sees_later_positions(data):
    codepoints, _, _ = data
    model = PQRNNMAtt(config())
    model.ensure_built()
    randomize(model, seed=3)
    ids = decoder_ids(3, 3, 8)
    base = model({"codepoints": codepoints, "decoder_inputs": ids}).numpy()
    for t in range(7):
        changed = ids.copy()
        changed[:, t + 1] = (changed[:, t + 1] + 5) % (20 + S)
        out = model({"codepoints": codepoints, "decoder_inputs": changed}).numpy()
        np.testing.assert_allclose(out[:, :t + 1], base[:, :t + 1], atol=1e-5)
        assert np.all(np.abs(out[:, t + 1:] - base[:, t + 1:]).max(-1) > 1e-4)


def test_label_smoothed_loss_ignores_padding():
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (2, 4, 6)).astype(np.float32)
    targets = np.array([[3, 4, 2, 0], [5, 2, 0, 0]], np.int32)
    eps = 0.1
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    tok = -(1 - eps) * np.take_along_axis(logp, targets[..., None], -1)[..., 0] - eps * logp.mean(-1)
    real = targets != 0
    expect = (tok * real).sum() / real.sum()
    assert float(sequence_loss(targets, logits, eps)) == pytest.approx(expect, rel=1e-5)
    per = sequence_loss(targets, logits, eps, per_example=True).numpy()
    np.testing.assert_allclose(per, (tok * real).sum(1) / real.sum(1), rtol=1e-5)
    changed = logits.copy()
    changed[real == 0] += 100.0  # padding positions do not count
    assert float(sequence_loss(targets, changed, eps)) == pytest.approx(expect, rel=1e-5)
    model = PQRNNMAtt(config(label_smoothing=eps))
    assert float(model.loss(targets, logits)) == pytest.approx(expect, rel=1e-5)


def test_quantized_forward_and_step(data):
    codepoints, projection, mask = data
    model = PQRNNMAtt(config(decoder_dropout=0.1, zoneout=0.3, dropout=0.1), quantize=True)
    ids = decoder_ids(5, 3, 6)
    inputs = {"projection": projection, "token_mask": mask, "decoder_inputs": ids}
    for _ in range(3):  # ranges from a few training calls
        out = model(inputs, training=True)
    assert np.isfinite(out.numpy()).all()
    q = model(inputs).numpy()
    assert np.isfinite(q).all() and q.shape == (3, 6, 20 + S)
    assert all(layer.quantize for layer in model._quantized_layers())
    assert all(b.query.quantize and b.norm2_quant.quantize for b in model.blocks)
    # Quantized, the step path starts from the same values (later steps carry rounding).
    cache = model.decoder_cache({"projection": projection, "token_mask": mask})
    first, _ = model.decoder_step(ids[:, 0], model.initial_state(3), cache)
    np.testing.assert_allclose(first.numpy()[:, 0], q[:, 0], atol=1e-4)
    # The switch turns every fake quant off and on again.
    assert set_quantize(model, False) > 20
    f = model(inputs).numpy()
    assert not np.allclose(f, q, atol=1e-4)
    set_quantize(model, True)
    np.testing.assert_allclose(model(inputs).numpy(), q, atol=1e-6)
    # Codepoints in, the projection in the graph, quantized.
    assert model({"codepoints": codepoints, "decoder_inputs": ids}).shape == (3, 6, 20 + S)


def test_int8_internals_layout_and_legacy_default(data):
    """int8_internals adds trained ranges inside the LayerNorms and before the score scalings;
    a config without it (a model.json written before the option) keeps the Keras LayerNorm and
    restores the earlier checkpoint layout."""
    codepoints, projection, mask = data
    old = {k: v for k, v in dataclasses.asdict(config()).items() if k != "int8_internals"}
    assert PQRNNMAttConfig.from_dict(old).int8_internals is False
    ids = decoder_ids(9, 3, 6)
    inputs = {"projection": projection, "token_mask": mask, "decoder_inputs": ids}
    legacy = PQRNNMAtt(config())
    legacy(inputs)
    assert all(isinstance(b.norm1, keras.layers.LayerNormalization) for b in legacy.blocks)
    assert legacy.raw_pointer_scores_quant is None
    model = PQRNNMAtt(config(int8_internals=True))
    for _ in range(3):
        model(inputs, training=True)
    assert all(type(b.norm1).__name__ == "QuantLayerNorm" for b in model.blocks)
    assert float(model.raw_pointer_scores_quant.seen) == 1.0
    assert all(float(b.raw_scores_quant.seen) == 1.0 for b in model.blocks)
    # The LayerNorms keep gamma and beta: the same trainable weights as the legacy layout.
    assert [w.shape for w in model.trainable_weights] == [w.shape for w in legacy.trainable_weights]
    q_off = model(inputs).numpy()
    set_quantize(model, True)
    q_on = model(inputs).numpy()
    assert np.isfinite(q_on).all() and not np.allclose(q_on, q_off, atol=1e-4)
    assert all(s.quantize for b in model.blocks for s in b.norm1.stages.values())


# -- learning demo parses ------------------------------------------------------------------------

N_EXAMPLES, STEPS = 30, 400


@pytest.fixture(scope="module")
def trained():
    """A tiny model trained on 30 English demo examples (full batch, Adam); about 20 s."""
    examples = demo.generate("en")["train"][:N_EXAMPLES]
    vocab = OutputVocab.build(examples, max_source_len=S)
    tf_rows = [vocab.teacher_forcing(vocab.encode(ex), T) for ex in examples]
    dec_in = np.stack([r.inputs for r in tf_rows])
    targets = np.stack([r.targets for r in tf_rows])
    _, projection, mask = encoder_inputs([ex.tokens for ex in examples])
    n = int(mask.sum(1).max())
    features = {"projection": projection[:, :n], "token_mask": mask[:, :n]}
    keras.utils.set_random_seed(0)
    model = PQRNNMAtt(PQRNNMAttConfig.for_vocab(
        vocab, num_features=F, bottleneck_dim=48, state_dim=32, num_layers=1, max_target_len=T,
        hidden_dim=48, num_decoder_layers=2, num_heads=2, ff_dim=96, label_smoothing=0.05))
    opt = keras.optimizers.Adam(3e-3)
    batch = dict(features, decoder_inputs=dec_in)

    @tf.function
    def train_step():
        with tf.GradientTape() as tape:
            loss = model.loss(targets, model(batch, training=True))
        opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                model.trainable_variables))
        return loss

    t0 = time.time()
    losses = [float(train_step()) for _ in range(STEPS)]
    seconds = time.time() - t0
    return dict(model=model, vocab=vocab, examples=examples, features=features, losses=losses,
                seconds=seconds, targets=targets)


def exact(vocab, examples, id_lists):
    decoded = [vocab.decode(ids, ex.tokens) for ids, ex in zip(id_lists, examples)]
    return [d.parse is not None and canonical(d.parse) == canonical(ex.parse)
            for d, ex in zip(decoded, examples)], decoded


def test_tiny_model_learns_demo_parses_and_greedy_reproduces_them(trained):
    model, vocab, examples = trained["model"], trained["vocab"], trained["examples"]
    losses = trained["losses"]
    assert losses[-1] < 0.3 * losses[0], (losses[0], losses[-1])
    stepper = KerasStepper(model)
    ids = greedy_decode(model, trained["features"], vocab=vocab, stepper=stepper)
    hits, decoded = exact(vocab, examples, ids)
    misses = [(ex.parse, d.parse) for h, ex, d in zip(hits, examples, decoded) if not h]
    assert sum(hits) >= 0.8 * len(examples), (sum(hits), misses[:5], trained["seconds"])
    # Constrained greedy never needs a repair.
    constrained = greedy_decode(model, trained["features"], vocab=vocab, constrain=True,
                                stepper=stepper)
    assert all(vocab.decode(i, ex.tokens).valid and not vocab.decode(i, ex.tokens).repaired
               for i, ex in zip(constrained, examples))
    assert sum(exact(vocab, examples, constrained)[0]) >= sum(hits) - 1


def test_beam_search_on_the_trained_model(trained):
    model, vocab, examples = trained["model"], trained["vocab"], trained["examples"]
    stepper = KerasStepper(model)
    feats = trained["features"]
    # Width 1 is greedy (constrained or not, any length penalty).
    for constrain in (False, True):
        g = greedy_decode(model, feats, vocab=vocab, constrain=constrain, stepper=stepper)
        b = beam_search(model, feats, beam_width=1, length_penalty_alpha=0.6, vocab=vocab,
                        constrain=constrain, stepper=stepper)
        assert b == g, constrain
    # Width 3, constrained: every output is a valid tree, and it does as well as greedy.
    hyps = beam_search(model, feats, beam_width=3, length_penalty_alpha=0.6, vocab=vocab,
                       stepper=stepper, return_all=True)
    best = [h[0].ids for h in hyps]
    for ids, ex, h in zip(best, examples, hyps):
        state = vocab.start_state(len(ex.tokens))
        for i in ids:
            state = state.advance(i)
        assert state.finished and h[0].finished and len(h) >= 1
        d = vocab.decode(ids, ex.tokens)
        assert d.valid and not d.repaired
    greedy_hits = sum(exact(vocab, examples, g)[0])
    assert sum(exact(vocab, examples, best)[0]) >= greedy_hits - 1
    with pytest.raises(ValueError, match="OutputVocab"):
        beam_search(model, feats, beam_width=2, stepper=stepper)
