"""Greedy and beam-search decoding of an ontology + pointer seq2seq model, on the host, in NumPy.

Follows Kandoor, "Tiny Neural Models for Seq2Seq" (arXiv 2108.03340): pQRNN-MAtt decodes with beam
search and the GNMT length penalty of Wu et al. (arXiv 1609.08144), `lp(Y) = ((5 + |Y|) / 6)^alpha`,
a hypothesis scoring `log P(Y | X) / lp(Y)`.

The search never sees a network: it drives a *stepper*, anything with

    vocab_size: int                   output ids
    pointer_offset: Optional[int]     id of `@0` (pointers beyond the source are masked), or None
    start(features) -> (cache, state, num_source)
        runs the encoder once; `cache` and `state` are nested dicts/lists/tuples of arrays whose
        first axis is the example, `num_source` int `[B]` real source tokens per example
    step(ids int32 [N], state, cache) -> (logits float [N, V], new state)
        one decoder position for N rows (N = B for greedy, B * beam_width for beam search)

so the same search serves the Keras model (`prado_tiny.models.pqrnn_matt.KerasStepper`) and an
exported one-step decoder .tflite. Rows are reordered between steps with `take_rows` (state and
cache are plain arrays: the search copies whatever the stepper returns).

Constraints (`constrain=True`, needs the `OutputVocab`): each row keeps a `TreeState` and only ids
that keep its prefix on the way to a well-formed tree, finishing within `max_len` ids, are scored;
the output is then always a valid tree (`OutputVocab.decode` has nothing to repair). Without
constraints the search still never emits `<pad>`, `<bos>` or a pointer beyond the source (no model
output can make sense of them), and `OutputVocab.decode` repairs what else comes out.

Id sequences are returned without `<bos>` and with the final `<eos>` when the hypothesis finished.
"""
from __future__ import annotations

import dataclasses
from typing import Any, List, Sequence

import numpy as np

from prado_tiny.data.seq2seq_targets import BOS, EOS, PAD, SPECIALS

BOS_ID, EOS_ID, PAD_ID = SPECIALS.index(BOS), SPECIALS.index(EOS), SPECIALS.index(PAD)


@dataclasses.dataclass
class Hypothesis:
    """One beam-search result.

    Attributes:
      ids: output ids without `<bos>`, ending with `<eos>` when `finished`.
      log_prob: sum of the (constraint-renormalised) log-probabilities of `ids`.
      score: `log_prob / length_penalty(len(ids), alpha)`, what the search ranks by.
      finished: the hypothesis emitted `<eos>` (else it was cut at `max_len`).
    """

    ids: List[int]
    log_prob: float
    score: float
    finished: bool


def length_penalty(length, alpha: float):
    """GNMT length penalty `((5 + length) / 6) ** alpha` (1 for alpha = 0)."""
    return ((5.0 + np.asarray(length, np.float64)) / 6.0) ** alpha


def _hypothesis(ids: List[int], log_prob: float, alpha: float, finished: bool) -> Hypothesis:
    return Hypothesis(ids, float(log_prob), float(log_prob / length_penalty(len(ids), alpha)), finished)


def take_rows(tree: Any, index: np.ndarray) -> Any:
    """The rows `index` (first axis) of every array in a nested dict/list/tuple."""
    if isinstance(tree, dict):
        return {k: take_rows(v, index) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(take_rows(v, index) for v in tree)
    if tree is None:
        return None
    return np.take(np.asarray(tree), index, axis=0)


def _check(stepper, vocab, constrain: bool, max_len: int) -> None:
    if max_len < 1:
        raise ValueError(f"max_len must be positive, got {max_len}")
    if constrain and vocab is None:
        raise ValueError("constrained decoding needs the OutputVocab (vocab=...)")
    if vocab is not None and vocab.size != stepper.vocab_size:
        raise ValueError(f"the vocabulary has {vocab.size} ids but the model outputs "
                         f"{stepper.vocab_size}")


def _static_masks(stepper, vocab, num_source: np.ndarray) -> np.ndarray:
    """`[B, V]` ids any output may hold: no `<pad>`/`<bos>`, no pointer beyond the source."""
    v = stepper.vocab_size
    mask = np.ones((len(num_source), v), bool)
    mask[:, [PAD_ID, BOS_ID]] = False
    offset = vocab.pointer_offset if vocab is not None else stepper.pointer_offset
    if offset is not None:
        positions = np.arange(v - offset)
        mask[:, offset:] = positions[None, :] < np.asarray(num_source)[:, None]
    return mask


def _allowed(tree, static_row: np.ndarray, max_len: int) -> np.ndarray:
    if tree is None:
        return static_row
    mask = tree.allowed(max_len) & static_row
    if not mask.any():  # a budget too small for any tree: end rather than fail
        mask[EOS_ID] = True
    return mask


def _masked_log_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """log-softmax over the allowed ids only (-inf elsewhere): a forced id costs nothing."""
    z = np.where(mask, logits.astype(np.float64), -np.inf)
    top = z.max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return z - top - np.log(np.exp(z - top).sum(axis=-1, keepdims=True))


def greedy_search(stepper, features, max_len: int, vocab=None, constrain: bool = False
                  ) -> List[List[int]]:
    """Greedy decoding: the most probable allowed id at every step.

    Args:
      stepper: see the module docstring.
      features: what `stepper.start` reads (a batch of encoder inputs).
      max_len: most output ids per example, `<eos>` included.
      vocab: the `OutputVocab` (required with `constrain`; otherwise used for the pointer offset).
      constrain: allow only ids that keep each prefix on its way to a well-formed tree.

    Returns: per example the ids without `<bos>`, with the final `<eos>` when one was emitted.
    """
    _check(stepper, vocab, constrain, max_len)
    cache, state, num_source = stepper.start(features)
    num_source = np.asarray(num_source, np.int64)
    b = len(num_source)
    static = _static_masks(stepper, vocab, num_source)
    trees = [vocab.start_state(n) if constrain else None for n in num_source]
    out: List[List[int]] = [[] for _ in range(b)]
    done = np.zeros(b, bool)
    ids = np.full(b, BOS_ID, np.int32)
    for _ in range(max_len):
        logits, state = stepper.step(ids, state, cache)
        mask = np.stack([_allowed(trees[i], static[i], max_len) for i in range(b)])
        nxt = np.argmax(np.where(mask, logits, -np.inf), axis=-1).astype(np.int32)
        for i in np.flatnonzero(~done):
            out[i].append(int(nxt[i]))
            if trees[i] is not None:
                trees[i] = trees[i].advance(nxt[i])
        done |= nxt == EOS_ID
        if done.all():
            break
        ids = np.where(done, PAD_ID, nxt).astype(np.int32)
    return out


def beam_search(stepper, features, beam_width: int, length_penalty_alpha: float, max_len: int,
                vocab=None, constrain: bool = True, return_all: bool = False):
    """Beam search with the GNMT length penalty, all examples of `features` together.

    Every example keeps `beam_width` live hypotheses (rows `b * beam_width + k` of the stepper's
    batch). Per step the best `2 * beam_width` extensions are ranked: an `<eos>` among the first
    `beam_width` finishes its hypothesis (scored `log P / lp`), the best `beam_width` others stay
    live; an example stops once `beam_width` hypotheses finished *and* no live hypothesis scores
    better (at its current length) than the worst of the best `beam_width` finished ones (the
    rule of Hugging Face's beam search without early stopping; width 1 is still exactly greedy
    decoding), or at `max_len`. Stopping at the first `beam_width` finished ones (fairseq's rule)
    lost the best hypothesis whenever cheap short ones finished first: under tree constraints a
    closed root's `<eos>` is forced and costs nothing, and on a barely trained demo model beam 4
    fell 20 tree exact-match points below greedy. The best finished hypothesis wins; an example
    that finished none returns its best live one (`finished=False`).

    Args:
      stepper, features, max_len, vocab, constrain: as `greedy_search` (constrained by default).
      beam_width: hypotheses per example.
      length_penalty_alpha: alpha of the GNMT length penalty (0: plain log-probability).
      return_all: return every hypothesis per example, best first, as `Hypothesis` lists.

    Returns: per example the best id list (as `greedy_search`), or with `return_all` the ranked
    `Hypothesis` lists.
    """
    _check(stepper, vocab, constrain, max_len)
    if beam_width < 1:
        raise ValueError(f"beam_width must be positive, got {beam_width}")
    k_width, alpha = int(beam_width), float(length_penalty_alpha)
    cache, state, num_source = stepper.start(features)
    num_source = np.asarray(num_source, np.int64)
    b, v = len(num_source), stepper.vocab_size
    rows = np.repeat(np.arange(b), k_width)
    cache, state = take_rows(cache, rows), take_rows(state, rows)
    static = _static_masks(stepper, vocab, num_source)
    # Live beams: only beam 0 is real at the start (the others would duplicate it).
    scores = np.full((b, k_width), -np.inf)
    scores[:, 0] = 0.0
    seqs = [[[] for _ in range(k_width)] for _ in range(b)]
    trees = [[vocab.start_state(n) if constrain else None] * k_width for n in num_source]
    finished: List[List[Hypothesis]] = [[] for _ in range(b)]
    done = np.zeros(b, bool)
    ids = np.full(b * k_width, BOS_ID, np.int32)
    for t in range(max_len):
        logits, state = stepper.step(ids, state, cache)
        logits = np.asarray(logits).reshape(b, k_width, v)
        parents = np.tile(np.arange(k_width), (b, 1))
        next_ids = np.full((b, k_width), PAD_ID, np.int32)
        for i in np.flatnonzero(~done):
            live = np.flatnonzero(np.isfinite(scores[i]))
            logp = np.full((k_width, v), -np.inf)
            for k in live:
                mask = _allowed(trees[i][k], static[i], max_len)
                logp[k] = _masked_log_softmax(logits[i, k], mask)
            cand = (scores[i][:, None] + logp).ravel()
            n_top = min(2 * k_width, cand.size)
            top = np.argpartition(-cand, n_top - 1)[:n_top]
            top = top[np.argsort(-cand[top], kind="stable")]
            new = []
            for rank, flat in enumerate(top):
                s = cand[flat]
                if not np.isfinite(s):
                    break
                k, tok = divmod(int(flat), v)
                if tok == EOS_ID:
                    if rank < k_width:
                        finished[i].append(_hypothesis(seqs[i][k] + [EOS_ID], s, alpha, True))
                    continue
                new.append((k, tok, s))
                if len(new) == k_width:
                    break
            if not new or t == max_len - 1 or _settled(finished[i], new, t + 1, k_width, alpha):
                if not finished[i] or t == max_len - 1:
                    # Cut at max_len (or nothing left to extend): the live beams compete too.
                    for k, tok, s in new:
                        finished[i].append(_hypothesis(seqs[i][k] + [tok], s, alpha, False))
                done[i] = True
                scores[i] = -np.inf
                continue
            new_seqs, new_trees = [], []
            for slot in range(k_width):
                if slot < len(new):
                    k, tok, s = new[slot]
                    parents[i, slot], next_ids[i, slot], scores[i, slot] = k, tok, s
                    new_seqs.append(seqs[i][k] + [tok])
                    tree = trees[i][k]
                    new_trees.append(tree.advance(tok) if tree is not None else None)
                else:  # fewer extensions than beams (a small constrained set): an empty beam
                    scores[i, slot] = -np.inf
                    new_seqs.append([])
                    new_trees.append(None)
            seqs[i], trees[i] = new_seqs, new_trees
        if done.all():
            break
        order = (np.arange(b)[:, None] * k_width + parents).ravel()
        state = take_rows(state, order)
        ids = next_ids.ravel()
    ranked = []
    for i in range(b):
        hyps = sorted(finished[i], key=lambda h: (not h.finished, -h.score))
        ranked.append(hyps)
    if return_all:
        return ranked
    return [hyps[0].ids if hyps else [] for hyps in ranked]


def _settled(finished: List[Hypothesis], new, length: int, k_width: int, alpha: float) -> bool:
    """True when `k_width` hypotheses finished and the best live one (`new`: `(beam, id, log P)`
    of length `length`) scores no better than the `k_width`-th best finished one."""
    if len(finished) < k_width:
        return False
    kth = sorted((h.score for h in finished), reverse=True)[k_width - 1]
    best_live = max(s for _, _, s in new) / length_penalty(length, alpha)
    return best_live <= kth


def decode_all(vocab, id_lists: Sequence[Sequence[int]], token_lists: Sequence[Sequence[str]]):
    """`OutputVocab.decode` of every id list against its example's source tokens."""
    if len(id_lists) != len(token_lists):
        raise ValueError(f"{len(id_lists)} id lists for {len(token_lists)} token lists")
    return [vocab.decode(ids, tokens) for ids, tokens in zip(id_lists, token_lists)]


class TFLiteStepper:
    """Drives an exported int8 encoder .tflite and one-step decoder .tflite (see
    `prado_tiny.models.pqrnn_matt.export_pqrnn_matt`) for these searches, without TensorFlow.

    Args:
      encoder, decoder: .tflite paths or bytes.
      num_threads: interpreter threads.

    `start(codepoints int32 [B, S, C])` runs the encoder once per utterance (the models have batch
    1) and keeps its int8 outputs as the cache; `step` runs the decoder once per row. Tensors
    pass between the models as int8 bytes; where an output's quantization differs from the input
    it feeds, it is requantized on the host (for keys and the mean state QAT pins both
    to one scale, so they pass unchanged; values are requantized, see BUILD.md).
    """

    def __init__(self, encoder, decoder, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        def load(m):
            kw = {"model_content": bytes(m)} if isinstance(m, (bytes, bytearray)) else {"model_path": str(m)}
            return Interpreter(num_threads=num_threads, **kw)

        self._enc_it, self._dec_it = load(encoder), load(decoder)
        self._enc = self._enc_it.get_signature_runner()
        self._dec = self._dec_it.get_signature_runner()
        self._enc_out = self._enc.get_output_details()
        self._dec_in = self._dec.get_input_details()
        self._dec_out = self._dec.get_output_details()
        self.layers = sum(1 for n in self._dec_in if n.startswith("mean_"))
        self.vocab_size = int(self._dec_out["logits"]["shape"][-1])
        self.pointer_offset = None  # pass the OutputVocab to the search to mask pointers

    @staticmethod
    def _requantize(a, src, dst):
        (s1, z1), (s2, z2) = src["quantization"], dst["quantization"]
        if dst["dtype"] != np.int8 or (s1 == s2 and z1 == z2):
            return a.astype(dst["dtype"])
        real = (a.astype(np.float64) - z1) * s1
        return np.clip(np.round(real / s2) + z2, -128, 127).astype(np.int8)

    def start(self, codepoints):
        cp = np.asarray(codepoints["codepoints"] if isinstance(codepoints, dict) else codepoints,
                        np.int32)
        outs = [self._enc(codepoints=cp[i:i + 1]) for i in range(len(cp))]
        cache = {name: np.concatenate([o[name] for o in outs], axis=0) for name in outs[0]}
        cache = {name: self._requantize(a, self._enc_out[name], self._dec_in[name])
                 for name, a in cache.items()}
        b = len(cp)
        zero = lambda d: np.full([b] + list(d["shape"][1:]), d["quantization"][1], d["dtype"])  # noqa: E731
        state = {"count": np.zeros([b, 1, 1], np.int32),
                 **{f"mean_{i}": zero(self._dec_in[f"mean_{i}"]) for i in range(self.layers)}}
        num_source = (cp.max(axis=2) > 0).sum(axis=1)
        return cache, state, num_source

    def step(self, ids, state, cache):
        ids = np.asarray(ids, np.int32)
        logits, new = [], {k: [] for k in state}
        scale, zero = self._dec_out["logits"]["quantization"]
        for r in range(len(ids)):
            feed = {name: a[r:r + 1] for name, a in cache.items()}
            feed.update({name: a[r:r + 1] for name, a in state.items()})
            feed["token"] = ids[r:r + 1].reshape(1, 1)
            out = self._dec(**feed)
            logits.append((out["logits"].astype(np.float32).reshape(-1) - zero) * scale)
            new["count"].append(out["new_count"])
            for i in range(self.layers):
                new[f"mean_{i}"].append(self._requantize(out[f"new_mean_{i}"],
                                                         self._dec_out[f"new_mean_{i}"],
                                                         self._dec_in[f"mean_{i}"]))
        return np.stack(logits), {k: np.concatenate(v, axis=0) for k, v in new.items()}
