"""The `tf.data` input pipeline: examples + label vocabulary + featurizer -> batches of (features, labels).

Model-agnostic: any model that reads the featurizer's arrays (and optionally the token mask) and
predicts an intent and a tag per token can train on it.

What one element holds (before batching; `L = max_seq_len`):

* features: whatever the featurizer returns, padded to `L` on the first axis (the default,
  `CodepointFeaturizer`, returns `codepoints`: int32 `[L, max_chars]`, plus `subwords` when its
  encoder has a WordPiece vocabulary), and `token_mask`: int32 `[L]`, 1 on real tokens.
* labels: `intent`: int32 scalar; `slots`: int32 `[L]` with `ignore_label` (default -1) on
  padding, so a loss can drop padded positions.
* with `sample_weights=True`, a third item `{"slots": float32 [L] mask}`; pass `ignore_label=0`
  then, since Keras' built-in sparse losses reject negative labels even at zero weight.

Sequences longer than `L` are cut to their first `L` tokens. That is never silent: it is counted
before the dataset is ever iterated (`InputPipeline.stats`, `ReadReport.truncated` if a report is
given) and logged as a warning, with how many labelled slot tokens were lost. Labels missing from
the vocabulary (a dev intent never seen in training) are counted and logged the same way.

Featurization runs on the host in NumPy, once per example: the features come out of a Python
generator and go straight into `Dataset.cache()` (in memory, or into files under a folder, keyed
by a fingerprint of the tokens and the featurizer's config, so a later run or a changed
featurizer never reads stale features). Epochs after the first read the cache and call the
featurizer no more. Shuffling (seeded, reshuffled every epoch), batching and prefetching come
after the cache.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import os
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import tensorflow as tf

from prado_tiny.data.example import Example, ReadReport
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab, normalize_intent

logger = logging.getLogger(__name__)

DEFAULT_MAX_SEQ_LEN = 64
IGNORE_LABEL = -1
TOKEN_MASK = "token_mask"
# Examples featurized per generator step (see `InputPipeline.dataset`).
_CHUNK = 256

Featurizer = Callable[[List[str]], Dict[str, np.ndarray]]


class CodepointFeaturizer:
    """The default featurizer: a `TextEncoder`'s int32 codepoints of each token.

    Returns `{"codepoints": [max_tokens, max_chars]}`, plus `{"subwords": [max_tokens, max_pieces,
    max_chars]}` when the encoder has a WordPiece vocabulary. Character truncation is counted in
    `encoder.stats`.
    """

    def __init__(self, encoder: Optional[TextEncoder] = None, max_seq_len: int = DEFAULT_MAX_SEQ_LEN):
        self.encoder = encoder if encoder is not None else TextEncoder(max_tokens=max_seq_len)

    def __call__(self, tokens: List[str]) -> Dict[str, np.ndarray]:
        out = {"codepoints": self.encoder.encode_tokens(tokens)}
        if self.encoder.wordpiece is not None:
            out["subwords"] = self.encoder.encode_subwords(tokens)
        return out

    def fingerprint(self) -> str:
        return "codepoints:" + self.encoder.fingerprint()

    @property
    def stats(self):
        return self.encoder.stats


@dataclasses.dataclass
class PipelineStats:
    """What the pipeline did to the examples it was given.

    Attributes:
      examples: examples given to `dataset` / `encode_all`.
      tokens: their tokens, all of them.
      examples_truncated: examples longer than `max_seq_len`.
      tokens_dropped: tokens cut off those examples.
      slot_tokens_dropped: of those, tokens with a slot tag other than `O`.
      featurizer_calls: times the featurizer ran (one per example and pass not served by a cache).
      unknown_intents, unknown_slot_tags: labels not in the vocabulary (encoded as `<unk>`).
    """

    examples: int = 0
    tokens: int = 0
    examples_truncated: int = 0
    tokens_dropped: int = 0
    slot_tokens_dropped: int = 0
    featurizer_calls: int = 0
    unknown_intents: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    unknown_slot_tags: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    def summary(self, max_seq_len: Optional[int] = None) -> str:
        lim = f"={max_seq_len}" if max_seq_len else ""
        lines = [f"{self.examples} examples, {self.tokens} tokens; featurizer calls: {self.featurizer_calls}",
                 f"longer than max_seq_len{lim}: {self.examples_truncated} examples, "
                 f"{self.tokens_dropped} tokens dropped ({self.slot_tokens_dropped} of them in slots)"]
        if self.unknown_intents or self.unknown_slot_tags:
            lines.append(f"labels not in the vocabulary: intents {dict(self.unknown_intents)}, "
                         f"slot tags {dict(self.unknown_slot_tags)}")
        return "\n".join(lines)


class InputPipeline:
    """Turns examples into a `tf.data.Dataset` of `(features, labels)`; see the module docstring.

    Args:
      vocab: the label vocabulary (built on the training split).
      featurizer: `tokens -> {name: np.ndarray}`; each array's first axis is either `max_seq_len`
        (already padded) or the number of tokens given (padded here with zeros). Default:
        `CodepointFeaturizer` with a `TextEncoder(max_tokens=max_seq_len)`. For file caches,
        give it a `fingerprint()` (or `get_config()`) that changes whenever its output would.
      max_seq_len: tokens per example; longer examples are cut (counted, logged).
      ignore_label: the slot label of padded positions.

    Example (`train` is a list of `Example`s):

        pipe = InputPipeline(LabelVocab.from_examples(train), max_seq_len=32)
        ds = pipe.dataset(train, batch_size=64, shuffle=True, seed=0)
        features, labels = next(iter(ds))  # codepoints [64, 32, 24], token_mask; intent, slots
        print(pipe.stats.summary(32))
    """

    def __init__(self, vocab: LabelVocab, featurizer: Optional[Featurizer] = None,
                 max_seq_len: int = DEFAULT_MAX_SEQ_LEN, ignore_label: int = IGNORE_LABEL):
        if not isinstance(max_seq_len, (int, np.integer)) or max_seq_len < 1:
            raise ValueError(f"max_seq_len must be a positive int, got {max_seq_len!r}")
        self.vocab = vocab
        self.max_seq_len = int(max_seq_len)
        self.featurizer = featurizer if featurizer is not None else CodepointFeaturizer(
            max_seq_len=self.max_seq_len)
        enc = getattr(self.featurizer, "encoder", None)
        if isinstance(enc, TextEncoder) and enc.max_tokens < self.max_seq_len:
            raise ValueError(f"the featurizer's TextEncoder has max_tokens={enc.max_tokens}, fewer "
                             f"than max_seq_len={self.max_seq_len}")
        self.ignore_label = int(ignore_label)
        self.stats = PipelineStats()
        self._spec: Optional[Dict[str, Tuple[tuple, np.dtype]]] = None

    # ------------------------------------------------------------------ one example

    def _tokens(self, ex: Example) -> List[str]:
        return list(ex.tokens[:self.max_seq_len])

    def featurize(self, tokens: Sequence[str]) -> Dict[str, np.ndarray]:
        """The featurizer's arrays for (already truncated) tokens, padded to `max_seq_len`, plus
        the token mask; checked against the shapes of the first example."""
        tokens = list(tokens)
        self.stats.featurizer_calls += 1
        raw = self.featurizer(tokens)
        if not isinstance(raw, dict) or not raw:
            raise ValueError(f"the featurizer must return a non-empty dict of arrays, got {type(raw).__name__}")
        out = {}
        for name, value in raw.items():
            arr = np.asarray(value)
            if arr.ndim == 0:
                raise ValueError(f"feature {name!r} is a scalar; features need a token axis first")
            if arr.shape[0] == self.max_seq_len:
                pass
            elif arr.shape[0] == len(tokens):
                pad = [(0, self.max_seq_len - len(tokens))] + [(0, 0)] * (arr.ndim - 1)
                arr = np.pad(arr, pad)
            else:
                raise ValueError(f"feature {name!r} has first axis {arr.shape[0]}; expected max_seq_len="
                                 f"{self.max_seq_len} or the number of tokens ({len(tokens)})")
            out[name] = arr
        mask = np.zeros([self.max_seq_len], np.int32)
        mask[:len(tokens)] = 1
        out[TOKEN_MASK] = mask
        spec = {k: (v.shape, v.dtype) for k, v in out.items()}
        if self._spec is None:
            self._spec = spec
        elif spec != self._spec:
            raise ValueError(f"featurizer output changed shape or dtype between examples: {spec} vs {self._spec}")
        return out

    def labels(self, ex: Example) -> Dict[str, np.ndarray]:
        """`intent` (int32 scalar) and `slots` (int32 `[max_seq_len]`, `ignore_label` on padding)."""
        if normalize_intent(ex.intent) not in self.vocab.intents:
            self.stats.unknown_intents[ex.intent] += 1
        tags = list(ex.slots[:self.max_seq_len])
        for t in tags:
            if t not in self.vocab.slots:
                self.stats.unknown_slot_tags[t] += 1
        intent = self.vocab.encode_intent(ex.intent)
        ids = self.vocab.encode_slots(tags)
        slots = np.full([self.max_seq_len], self.ignore_label, np.int32)
        slots[:len(ids)] = ids
        return {"intent": np.int32(intent), "slots": slots}

    def _count(self, examples: Sequence[Example], report: Optional[ReadReport]) -> None:
        """Counts lengths and truncation up front, so it is known before any iteration."""
        truncated = 0
        for ex in examples:
            if len(ex.tokens) != len(ex.slots):
                raise ValueError(f"{ex.source or ex.id}: {len(ex.tokens)} tokens but {len(ex.slots)} slot tags")
            self.stats.examples += 1
            self.stats.tokens += len(ex.tokens)
            cut = len(ex.tokens) - self.max_seq_len
            if cut > 0:
                truncated += 1
                self.stats.tokens_dropped += cut
                self.stats.slot_tokens_dropped += sum(t != "O" for t in ex.slots[self.max_seq_len:])
        self.stats.examples_truncated += truncated
        if report is not None:
            report.truncated += truncated
        if truncated:
            logger.warning("%d of %d examples are longer than max_seq_len=%d and were cut to it; "
                           "this pipeline has dropped %d tokens so far, %d of them in slots",
                           truncated, len(examples), self.max_seq_len, self.stats.tokens_dropped,
                           self.stats.slot_tokens_dropped)

    def _warn_unknown(self) -> None:
        if self.stats.unknown_intents or self.stats.unknown_slot_tags:
            logger.warning("labels not in the vocabulary, encoded as <unk>: intents %s, slot tags %s",
                           dict(self.stats.unknown_intents), dict(self.stats.unknown_slot_tags))

    # ------------------------------------------------------------------ whole sets

    def encode_all(self, examples: Iterable[Example], report: Optional[ReadReport] = None
                   ) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """Every example at once as stacked NumPy arrays `(features, labels)`: for evaluation,
        prediction and converter calibration, where a `tf.data` pipeline is not needed."""
        examples = list(examples)
        if not examples:
            raise ValueError("no examples to encode")
        self._count(examples, report)
        feats = [self.featurize(self._tokens(ex)) for ex in examples]
        labels = [self.labels(ex) for ex in examples]
        self._warn_unknown()
        stack = lambda items: {k: np.stack([d[k] for d in items]) for k in items[0]}  # noqa: E731
        return stack(feats), stack(labels)

    def dataset(self, examples: Iterable[Example], batch_size: int = 32, shuffle: bool = False,
                seed: int = 0, shuffle_buffer: Optional[int] = None,
                cache: Union[str, None] = "memory", drop_remainder: bool = False,
                prefetch: bool = True, sample_weights: bool = False,
                report: Optional[ReadReport] = None) -> tf.data.Dataset:
        """A batched `tf.data.Dataset` of `(features, labels)` (or `(..., weights)`).

        Args:
          examples: the examples (read once into a list).
          batch_size: examples per batch.
          shuffle: shuffle (after the cache), with a different order every epoch.
          seed: the shuffle seed: the same seed gives the same sequence of epoch orders.
          shuffle_buffer: default: the whole set (it is small: features are cached anyway).
          cache: `"memory"`, None (featurize every epoch), or a folder for cache files (kept
            across runs; the file name carries a fingerprint of tokens and featurizer).
          drop_remainder: drop a last, smaller batch (static batch dimension).
          prefetch: prefetch batches (AUTOTUNE) so the host overlaps the model.
          sample_weights: add a third item `{"slots": float32 mask}`; see the module docstring.
          report: a ReadReport whose `truncated` count is increased by the truncated examples.
        """
        examples = list(examples)
        if not examples:
            raise ValueError("no examples: cannot build a dataset")
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self._count(examples, report)
        # Labels are cheap: encode them now, so unknown labels are reported before training starts.
        labels = [self.labels(ex) for ex in examples]
        self._warn_unknown()
        label_arrays = {k: np.stack([d[k] for d in labels]) for k in labels[0]}

        # One example is featurized now for the element spec; the generator reuses it.
        first = {"features": self.featurize(self._tokens(examples[0]))}
        token_lists = [self._tokens(ex) for ex in examples]

        def generate():
            # Chunks of examples per yield: each yield crosses from TF into Python, which costs
            # more than featurizing one example; `unbatch` below restores single examples.
            for lo in range(0, len(token_lists), _CHUNK):
                chunk = []
                for i in range(lo, min(lo + _CHUNK, len(token_lists))):
                    if i == 0 and first.get("features") is not None:
                        chunk.append(first.pop("features"))
                    else:
                        chunk.append(self.featurize(token_lists[i]))
                yield {k: np.stack([f[k] for f in chunk]) for k in chunk[0]}

        signature = {k: tf.TensorSpec((None,) + v.shape, tf.as_dtype(v.dtype))
                     for k, v in first["features"].items()}
        features = tf.data.Dataset.from_generator(generate, output_signature=signature).unbatch()
        if cache == "memory":
            features = features.cache()
        elif cache:
            features = features.cache(self._cache_file(cache, token_lists))
        ds = tf.data.Dataset.zip((features, tf.data.Dataset.from_tensor_slices(label_arrays)))
        if sample_weights:
            ds = ds.map(lambda f, y: (f, y, {"slots": tf.cast(f[TOKEN_MASK], tf.float32)}))
        if shuffle:
            buffer = shuffle_buffer or len(examples)
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        if prefetch:
            ds = ds.prefetch(tf.data.AUTOTUNE)
        return ds

    def _cache_file(self, folder: str, token_lists: List[List[str]]) -> str:
        """`<folder>/features-<fingerprint>`: tokens, max_seq_len and featurizer config."""
        os.makedirs(folder, exist_ok=True)
        h = hashlib.sha256()
        h.update(featurizer_fingerprint(self.featurizer).encode("utf-8"))
        h.update(str(self.max_seq_len).encode("ascii"))
        for tokens in token_lists:
            h.update(json.dumps(tokens, ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
        return os.path.join(folder, "features-" + h.hexdigest()[:24])


def featurizer_fingerprint(featurizer) -> str:
    """A string that changes when the featurizer's output would: its `fingerprint()`, else its
    `get_config()`, else (with a warning: a file cache cannot notice changes) its class name."""
    if hasattr(featurizer, "fingerprint"):
        return str(featurizer.fingerprint())
    if hasattr(featurizer, "get_config"):
        return json.dumps(featurizer.get_config(), sort_keys=True, default=str)
    name = getattr(featurizer, "__qualname__", type(featurizer).__qualname__)
    logger.warning("featurizer %s has no fingerprint() or get_config(): a file cache keyed by its "
                   "name will not notice if its output changes", name)
    return f"{getattr(featurizer, '__module__', '')}.{name}"


def make_dataset(examples: Iterable[Example], vocab: LabelVocab, featurizer: Optional[Featurizer] = None,
                 max_seq_len: int = DEFAULT_MAX_SEQ_LEN, ignore_label: int = IGNORE_LABEL,
                 **kwargs) -> tf.data.Dataset:
    """`InputPipeline(vocab, featurizer, max_seq_len, ignore_label).dataset(examples, **kwargs)`.

    Use `InputPipeline` directly to keep its `stats`.
    """
    return InputPipeline(vocab, featurizer, max_seq_len, ignore_label).dataset(examples, **kwargs)
