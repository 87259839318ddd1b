"""Character-level text distortion for training, as pQRNN uses to make projections robust.

Each character of each token is, with probability `probability`, edited by one of three
operations (chosen with the relative weights `deletion`, `insertion`, `swap`):

* deletion: the character is removed;
* insertion: a character drawn uniformly from the same example's characters is inserted
  before it (drawing from the example keeps the script: a Thai utterance gets Thai typos);
* swap (a move by one place): the character trades places with the next one (with the previous
  one when it is the token's last character; a one-character token is left as it is).

Guarantees, which keep labels valid:

* The number of tokens never changes (BIO slot tags stay aligned): an empty token list gives an
  empty list and nothing else does.
* A token never becomes empty: when every character of a token is deleted, its first original
  character stays. An empty input token stays empty.
* Deterministic: the output depends only on the input and the state of the numpy Generator (or
  the seed) passed in. Draws are vectorised over a whole batch, so distorting a batch at once
  is not the same random stream as distorting its examples one by one.

Edits work on code points (a keystroke in most input methods, including Thai and Devanagari
marks), host side, before `TextEncoder`.
"""
from __future__ import annotations

from typing import List, Sequence, Union

import numpy as np

RandomLike = Union[np.random.Generator, int, None]

_DELETE, _INSERT, _SWAP = 0, 1, 2


def as_generator(rng: RandomLike) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is) or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        raise ValueError("pass a numpy Generator or an int seed: distortion must be reproducible")
    return np.random.default_rng(rng)


class TextDistorter:
    """Random character deletions, insertions and swaps inside tokens.

    Args:
      probability: chance that each character is edited (0 disables distortion).
      deletion: relative weight of deletions.
      insertion: relative weight of insertions.
      swap: relative weight of swaps with a neighbour.

    Example:
    >>> distorter = TextDistorter(probability=0.1)
    >>> distorter.distort(["set", "an", "alarm", "for", "7", "pm"], np.random.default_rng(1))
    ['set', 'an', 'alar', 'for', '7', 'pm']
    """

    def __init__(self, probability: float = 0.1, deletion: float = 1.0, insertion: float = 1.0,
                 swap: float = 1.0):
        if not 0.0 <= float(probability) <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability!r}")
        weights = np.array([deletion, insertion, swap], dtype=np.float64)
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise ValueError("deletion, insertion and swap weights must be >= 0, not all 0")
        self.probability = float(probability)
        self.deletion, self.insertion, self.swap = (float(w) for w in weights)
        self._weights = weights / weights.sum()

    def distort(self, tokens: Sequence[str], rng: RandomLike) -> List[str]:
        """A distorted copy of one token list (same length)."""
        return self.distort_batch([tokens], rng)[0]

    def distort_batch(self, token_lists: Sequence[Sequence[str]], rng: RandomLike) -> List[List[str]]:
        """A distorted copy of each token list; random draws are made for the whole batch."""
        rng = as_generator(rng)
        out = [list(tokens) for tokens in token_lists]
        if self.probability == 0.0:
            return out
        flat_tokens = [t for tokens in out for t in tokens]
        token_lens = np.fromiter((len(t) for t in flat_tokens), dtype=np.int64,
                                 count=len(flat_tokens))
        total = int(token_lens.sum())
        if total == 0:
            return out
        flat_text = "".join(flat_tokens)
        # Draw count depends only on the input and earlier draws: reproducible streams.
        hits = np.flatnonzero(rng.random(total) < self.probability)
        if hits.size == 0:
            return out
        ops = rng.choice(3, size=hits.size, p=self._weights)
        source_u = rng.random(hits.size)

        token_ends = np.cumsum(token_lens)
        token_starts = token_ends - token_lens
        example_sizes = np.array([sum(len(t) for t in tokens) for tokens in out], dtype=np.int64)
        example_ends = np.cumsum(example_sizes)
        example_starts = example_ends - example_sizes
        hit_token = np.searchsorted(token_ends, hits, side="right")
        hit_pos = hits - token_starts[hit_token]
        hit_example = np.searchsorted(example_ends, hits, side="right")
        # An insertion copies a character of the same example.
        sources = example_starts[hit_example] + np.minimum(
            (source_u * example_sizes[hit_example]).astype(np.int64),
            example_sizes[hit_example] - 1)

        edits = {}
        for tok, pos, op, src in zip(hit_token.tolist(), hit_pos.tolist(), ops.tolist(),
                                     sources.tolist()):
            edits.setdefault(tok, {})[pos] = (op, flat_text[src])
        new_tokens = list(flat_tokens)
        for tok, token_edits in edits.items():
            new_tokens[tok] = _edit(flat_tokens[tok], token_edits)
        i = 0
        for tokens in out:
            n = len(tokens)
            tokens[:] = new_tokens[i:i + n]
            i += n
        return out

    def get_config(self) -> dict:
        return {"probability": self.probability, "deletion": self.deletion,
                "insertion": self.insertion, "swap": self.swap}

    @classmethod
    def from_config(cls, config: dict) -> "TextDistorter":
        return cls(**config)


def _edit(token: str, edits: dict) -> str:
    """Applies `{position: (op, char)}` left to right over the original characters."""
    chars = list(token)
    n = len(chars)
    out: List[str] = []
    i = 0
    while i < n:
        op = edits.get(i)
        if op is None:
            out.append(chars[i])
        elif op[0] == _DELETE:
            pass
        elif op[0] == _INSERT:
            out.append(op[1])
            out.append(chars[i])
        elif i + 1 < n:  # swap with the next character; its own edit is skipped
            out.append(chars[i + 1])
            out.append(chars[i])
            i += 1
        elif out:  # last character: swap with the previous output character
            out.insert(len(out) - 1, chars[i])
        else:
            out.append(chars[i])
        i += 1
    if not out:
        out.append(chars[0])
    return "".join(out)
