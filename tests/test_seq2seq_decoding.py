"""Tests for prado_tiny.seq2seq_decoding: greedy and beam search over toy steppers (no network):
beam beats greedy where it should, width 1 is greedy, the GNMT length penalty, constraints give
valid trees, pointers beyond the source are never emitted, rows are reordered correctly."""
import numpy as np
import pytest

from prado_tiny.data.parse import parse_tree
from prado_tiny.data.seq2seq_targets import OutputVocab
from prado_tiny.seq2seq_decoding import (BOS_ID, EOS_ID, PAD_ID, beam_search, decode_all,
                                         greedy_search, length_penalty, take_rows)


class TableStepper:
    """Logits from a table indexed by (position, previous id): `table[t, prev]` -> [V]. The state
    is the position per row; the cache holds a per-example offset added to every logit row, so a
    wrong reordering of rows shows up."""

    def __init__(self, table, num_source, pointer_offset=None, example_bias=None):
        self.table = np.asarray(table, np.float64)
        self.vocab_size = self.table.shape[-1]
        self.pointer_offset = pointer_offset
        self.num_source = np.asarray(num_source)
        self.example_bias = example_bias
        self.steps = 0

    def start(self, features):
        b = len(self.num_source)
        bias = (np.zeros((b, self.vocab_size)) if self.example_bias is None
                else np.asarray(self.example_bias, np.float64))
        return {"bias": bias, "row": np.arange(b)}, {"t": np.zeros(b, np.int64)}, self.num_source

    def step(self, ids, state, cache):
        self.steps += 1
        t = np.minimum(state["t"], self.table.shape[0] - 1)
        logits = self.table[t, ids] + cache["bias"]
        return logits, {"t": state["t"] + 1}


def log_probs(rows):
    """A [V] logit row from {id: probability} (the rest share what is left)."""
    def row(spec, v):
        p = np.full(v, 1e-6)
        for i, q in spec.items():
            p[i] = q
        return np.log(p / p.sum())
    return row


def toy_table(v=6, steps=4):
    """Greedy takes 3 (p .5) then <eos> (.3): .15; beam finds 4 (.4) then <eos> (.9): .36."""
    row = log_probs(None)
    table = np.tile(row({EOS_ID: 1.0}, v), (steps, v, 1))
    table[0, BOS_ID] = row({3: 0.5, 4: 0.4, EOS_ID: 0.1}, v)
    table[1, 3] = row({EOS_ID: 0.3, 3: 0.24, 4: 0.23, 5: 0.23}, v)
    table[1, 4] = row({EOS_ID: 0.9, 5: 0.1}, v)
    return table


def test_beam_finds_the_better_sequence_greedy_misses():
    stepper = TableStepper(toy_table(), [3])
    assert greedy_search(stepper, None, max_len=4) == [[3, EOS_ID]]
    assert beam_search(stepper, None, 1, 0.0, 4, constrain=False) == [[3, EOS_ID]]
    assert beam_search(stepper, None, 2, 0.0, 4, constrain=False) == [[4, EOS_ID]]
    hyps = beam_search(stepper, None, 2, 0.0, 4, constrain=False, return_all=True)[0]
    assert hyps[0].ids == [4, EOS_ID] and hyps[0].finished
    assert hyps[0].log_prob == pytest.approx(np.log(0.36), abs=1e-3)
    assert [h.score for h in hyps] == sorted([h.score for h in hyps], reverse=True)


def test_a_cheap_short_finish_does_not_end_the_search_early():
    # Width 2: [4 <eos>] (p .376) and [3 5 <eos>] (.029) finish while [3 5 3] (.513) is live;
    # stopping at two finished ones (fairseq's rule) returned [4 <eos>], below greedy's
    # [3 5 3 <eos>] (.508). The search must go on while a live hypothesis scores better.
    v = 6
    row = log_probs(None)
    table = np.tile(row({EOS_ID: 1.0}, v), (5, v, 1))
    table[0, BOS_ID] = row({3: 0.6, 4: 0.38}, v)
    table[1, 3] = row({5: 0.95, EOS_ID: 0.04}, v)
    table[1, 4] = row({EOS_ID: 0.99}, v)
    table[2, 5] = row({3: 0.9, EOS_ID: 0.05}, v)
    table[3, 3] = row({EOS_ID: 0.99}, v)
    stepper = TableStepper(table, [3])
    best = [3, 5, 3, EOS_ID]
    assert greedy_search(stepper, None, max_len=5) == [best]
    for alpha in (0.0, 0.6):
        hyps = beam_search(stepper, None, 2, alpha, 5, constrain=False, return_all=True)[0]
        assert hyps[0].ids == best, (alpha, [(h.ids, h.score) for h in hyps])
        path = table[0, BOS_ID, 3] + table[1, 3, 5] + table[2, 5, 3] + table[3, 3, EOS_ID]
        assert hyps[0].log_prob == pytest.approx(path, abs=1e-4)  # <pad>, <bos> masked
        assert [4, EOS_ID] in [h.ids for h in hyps]  # it finished, and lost


def test_width_one_is_greedy_on_random_tables_and_batches():
    rng = np.random.default_rng(0)
    for seed in range(20):
        v, steps, b = 9, 7, 3
        table = rng.normal(0, 2, (steps, v, v))
        bias = rng.normal(0, 1, (b, v))
        stepper = TableStepper(table, [5, 5, 5], example_bias=bias)
        g = greedy_search(stepper, None, max_len=steps)
        for alpha in (0.0, 0.6, 2.0):
            assert beam_search(stepper, None, 1, alpha, steps, constrain=False) == g, seed


def test_rows_stay_with_their_example():
    # Each example's bias forces its own token: a mixed-up reordering would swap them.
    v, steps = 7, 5
    table = np.zeros((steps, v, v))
    table[:, :, EOS_ID] = -1.0
    table[2:, :, EOS_ID] = 5.0
    bias = np.zeros((3, v))
    for i, tok in enumerate((3, 4, 5)):
        bias[i, tok] = 3.0
    stepper = TableStepper(table, [5, 5, 5], example_bias=bias)
    expect = [[3, 3, EOS_ID], [4, 4, EOS_ID], [5, 5, EOS_ID]]
    assert greedy_search(stepper, None, max_len=steps) == expect
    assert beam_search(stepper, None, 3, 0.6, steps, constrain=False) == expect


def test_length_penalty_prefers_longer_hypotheses_with_alpha():
    assert length_penalty(1, 0.0) == 1.0 and length_penalty(1, 1.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)
    v = 6
    row = log_probs(None)
    table = np.tile(row({EOS_ID: 1.0}, v), (3, v, 1))
    # <eos> at once: log .37 = -0.99; 3 then <eos>: log(.30 * .99) = -1.21.
    table[0, BOS_ID] = row({EOS_ID: 0.37, 3: 0.30, 4: 0.33}, v)
    table[1, 3] = row({EOS_ID: 0.99}, v)
    table[1, 4] = row({EOS_ID: 0.5, 5: 0.5}, v)
    stepper = TableStepper(table, [3])
    assert beam_search(stepper, None, 2, 0.0, 3, constrain=False) == [[EOS_ID]]
    # alpha 2: -0.99 / 1 against -1.21 / (7/6)^2 = -0.89.
    assert beam_search(stepper, None, 2, 2.0, 3, constrain=False) == [[3, EOS_ID]]


def test_max_len_cuts_and_marks_unfinished():
    v = 6
    table = np.zeros((5, v, v))
    table[:, :, 3] = 4.0
    table[:, :, EOS_ID] = -10.0  # never wants to stop
    stepper = TableStepper(table, [3])
    assert greedy_search(stepper, None, max_len=3) == [[3, 3, 3]]
    hyps = beam_search(stepper, None, 2, 0.6, 3, constrain=False, return_all=True)[0]
    assert hyps[0].ids == [3, 3, 3] and not hyps[0].finished
    with pytest.raises(ValueError):
        greedy_search(stepper, None, max_len=0)
    with pytest.raises(ValueError):
        beam_search(stepper, None, 0, 0.6, 3, constrain=False)


PARSES = ["[IN:GET_WEATHER [SL:LOCATION London ] ]", "[IN:PAUSE_MUSIC ]",
          "[IN:CREATE_ALARM [SL:DATE_TIME at 7 am ] ]"]


def test_constraints_give_valid_trees_and_pointers_stay_in_the_source():
    vocab = OutputVocab.build(PARSES, max_source_len=8)
    rng = np.random.default_rng(1)
    tokens = [["weather", "in", "London"], ["pause"], ["wake", "me", "at", "7", "am"]]
    num_source = [len(t) for t in tokens]
    for seed in range(5):
        table = rng.normal(0, 3, (12, vocab.size, vocab.size))
        # Push the pointers beyond every source: unconstrained search must still skip them.
        table[:, :, vocab.pointer(7)] += 20.0
        stepper = TableStepper(table, num_source, pointer_offset=vocab.pointer_offset)
        free = greedy_search(stepper, None, max_len=12, vocab=vocab)
        for ids, n in zip(free, num_source):
            assert all(vocab.position(i) < n for i in ids if vocab.is_pointer(i))
            assert PAD_ID not in ids and BOS_ID not in ids
        for search in (lambda: greedy_search(stepper, None, 12, vocab, constrain=True),
                       lambda: beam_search(stepper, None, 3, 0.6, 12, vocab, constrain=True)):
            out = search()
            decoded = decode_all(vocab, out, tokens)
            for ids, n, d in zip(out, num_source, decoded):
                assert ids[-1] == EOS_ID and len(ids) <= 12
                state = vocab.start_state(n)
                for i in ids:
                    state = state.advance(i)  # raises on any rule broken
                assert d.valid and not d.repaired, (vocab.tokens(ids), d.problems)
                parse_tree(d.parse)
        # Constrained width 1 is constrained greedy.
        assert beam_search(stepper, None, 1, 0.6, 12, vocab, constrain=True) == \
            greedy_search(stepper, None, 12, vocab, constrain=True)


def test_argument_checks_and_take_rows():
    vocab = OutputVocab.build(PARSES, max_source_len=8)
    stepper = TableStepper(np.zeros((2, 5, 5)), [2])
    with pytest.raises(ValueError, match="OutputVocab"):
        greedy_search(stepper, None, 4, constrain=True)
    with pytest.raises(ValueError, match="ids"):
        greedy_search(stepper, None, 4, vocab=vocab)
    tree = {"a": [np.arange(3), (np.arange(6).reshape(3, 2),)], "b": None}
    out = take_rows(tree, np.array([2, 0]))
    np.testing.assert_array_equal(out["a"][0], [2, 0])
    np.testing.assert_array_equal(out["a"][1][0], [[4, 5], [0, 1]])
    assert out["b"] is None and isinstance(out["a"][1], tuple)
    with pytest.raises(ValueError):
        decode_all(vocab, [[]], [])


class HistoryStepper(TableStepper):
    """Logits that also depend on a hash of every id so far (kept in the state): a beam whose
    state is not reordered with its hypothesis scores other numbers than a replay of its ids."""

    def __init__(self, table, memory, num_source):
        super().__init__(table, num_source)
        self.memory = memory

    def start(self, features):
        cache, state, n = super().start(features)
        state["h"] = np.zeros(len(n), np.int64)
        return cache, state, n

    def step(self, ids, state, cache):
        logits, new = super().step(ids, state, cache)
        h = (state["h"] * 31 + ids) % len(self.memory)
        return logits + self.memory[h], {"t": new["t"], "h": h}


def replay_log_prob(stepper, ids, example):
    """log P(ids) by feeding them one at a time (batch of one, no search)."""
    cache, state, n = stepper.start(None)
    cache, state = take_rows(cache, [example]), take_rows(state, [example])
    prev, total = BOS_ID, 0.0
    for i in ids:
        logits, state = stepper.step(np.array([prev], np.int32), state, cache)
        z = logits[0].astype(np.float64)
        z[[PAD_ID, BOS_ID]] = -np.inf
        total += z[i] - np.log(np.exp(z - z.max()).sum()) - z.max()
        prev = i
    return total


def test_hypothesis_scores_match_a_replay_of_their_ids():
    rng = np.random.default_rng(7)
    v, steps, b = 8, 6, 2
    for seed in range(4):
        stepper = HistoryStepper(rng.normal(0, 1.5, (steps, v, v)), rng.normal(0, 2, (97, v)),
                                 [4] * b)
        ranked = beam_search(stepper, None, 3, 0.6, steps, constrain=False, return_all=True)
        for example, hyps in enumerate(ranked):
            assert hyps
            for h in hyps:
                assert h.log_prob == pytest.approx(replay_log_prob(stepper, h.ids, example),
                                                   abs=1e-6), (seed, h)
                assert h.score == pytest.approx(h.log_prob / length_penalty(len(h.ids), 0.6))
