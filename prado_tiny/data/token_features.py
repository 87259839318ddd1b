"""Token features computed once on the host and kept ragged: the training set of a projection model.

A projection model's input features depend only on the text, so they are computed once, before
training, and stored per real token (no padding): `values [total_tokens, ...]` plus each
example's length. A batch is padded to its own longest example, not to `max_seq_len`: MTOP
utterances have 8 tokens on average, so a batch padded to 64 would be mostly padding.

For pNLP-Mixer the values are the MinHash Bloom buckets of each token (int16 `[H]`, `H` hashes),
the compact form of its counting-Bloom-filter features (`BloomBottleneck` reads them directly).

Labels live beside the features: the intent (a class id, or a multi-hot row for multi-label
intents), slot tag ids per token, and a slot weight per example: 0 for rows whose slots could not
be aligned to tokens (`Example.unaligned`), so their slot tags (tagged `O` where unaligned) never
teach the model that a real slot is `O`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from prado_tiny.data.example import Example
from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab, normalize_intent

#: Examples featurized per host call (bounds the padded codepoint array in memory).
CHUNK = 1024

TokenFeaturizer = Callable[[np.ndarray], Tuple[np.ndarray, np.ndarray]]


def atomic_intents(label: str) -> List[str]:
    """The parts of a (multi-)intent label: `a#b` -> [`a`, `b`]."""
    return normalize_intent(label).split("#")


@dataclasses.dataclass
class TokenFeatureSet:
    """Ragged per-token features and labels of a list of examples.

    Attributes:
      examples: the examples, in input order.
      values: `[total_tokens, ...]` features of every encoded token, example after example.
      lengths: int32 `[N]` encoded tokens per example (at most max_seq_len).
      starts: int64 `[N]` offset of each example's first token in `values`.
      intents: int32 `[N]` class ids, or float32 `[N, num_intents]` multi-hot.
      slots: int32 `[total_tokens]` slot tag ids.
      slot_weight: float32 `[N]` 1, or 0 for examples with unaligned slots.
      feature_key: the model input name of the values (`buckets` for pNLP-Mixer,
        `projection` for pQRNN).
      teacher: None, or the teacher's soft targets for distillation
        (`prado_tiny.data.teacher.SoftTargets`); batches then carry them as labels.
    """

    examples: List[Example]
    values: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    intents: np.ndarray
    slots: np.ndarray
    slot_weight: np.ndarray
    feature_key: str = "buckets"
    teacher: Optional[Any] = None

    def __len__(self) -> int:
        return len(self.examples)

    def batch(self, index: Sequence[int]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """The examples `index` padded to their longest one: `({feature_key, "token_mask"},
        {"intent", "slots", "slot_weight"})`; padded slot labels are 0 with mask 0."""
        index = np.asarray(index, np.int64)
        lengths = self.lengths[index]
        t = max(int(lengths.max()) if len(index) else 1, 1)
        n = len(index)
        mask = (np.arange(t)[None, :] < lengths[:, None])
        rows, cols = np.nonzero(mask)
        src = self.starts[index][rows] + cols
        values = np.zeros((n, t) + self.values.shape[1:], self.values.dtype)
        values[rows, cols] = self.values[src]
        slots = np.zeros((n, t), np.int32)
        slots[rows, cols] = self.slots[src]
        features = {self.feature_key: values, "token_mask": mask.astype(np.int32)}
        labels = {"intent": self.intents[index], "slots": slots,
                  "slot_weight": self.slot_weight[index]}
        if self.teacher is not None:
            soft = np.zeros((n, t, self.teacher.slots.shape[1]), np.float32)
            soft[rows, cols] = self.teacher.slots[src]
            labels.update(teacher_intent=self.teacher.intents[index], teacher_slots=soft,
                          teacher_weight=self.teacher.weight[index])
        return features, labels


def encode_labels(examples: Sequence[Example], vocab: LabelVocab, max_seq_len: int,
                  intent_mode: str = "joint"):
    """-> (intents, flat slot ids over the first max_seq_len tokens, slot weights)."""
    if intent_mode == "multi_label":
        intents = np.zeros((len(examples), vocab.num_intents), np.float32)
        for i, ex in enumerate(examples):
            for part in atomic_intents(ex.intent):
                intents[i, vocab.encode_intent(part)] = 1.0
    else:
        intents = np.array([vocab.encode_intent(ex.intent) for ex in examples], np.int32)
    slots = np.array([s for ex in examples for s in vocab.encode_slots(ex.slots[:max_seq_len])],
                     np.int32)
    weight = np.array([0.0 if ex.unaligned else 1.0 for ex in examples], np.float32)
    return intents, slots, weight


def featurize(examples: Sequence[Example], encoder: TextEncoder, featurizer: TokenFeaturizer,
              vocab: LabelVocab, max_seq_len: int, intent_mode: str = "joint",
              subwords: bool = True, dtype=np.int16, feature_key: str = "buckets",
              encode: Optional[Callable] = None, progress: Optional[Callable[[int], None]] = None) -> TokenFeatureSet:
    """Encodes `examples` (their own tokens, cut to max_seq_len) and runs `featurizer` over them.

    Args:
      examples: the examples.
      encoder: the TextEncoder (its max_tokens must be at least max_seq_len).
      featurizer: int32 codepoints `[n, T, (P,) C]` -> (values `[n, T, ...]`, mask `[n, T]`).
      vocab: the label vocabulary.
      max_seq_len: tokens kept per example.
      intent_mode: `joint` or `multi_label` (see `encode_labels`).
      subwords: feed the WordPiece form `[n, T, P, C]` (else `[n, T, C]`).
      dtype: storage dtype of the values.
      feature_key: the model input name of the values.
      encode: token lists -> the featurizer's input (default: the encoder's subword or token
        form, by `subwords`).
      progress: called with the number of examples done after each chunk.
    """
    examples = list(examples)
    values, lengths, starts = _token_values(examples, encoder, featurizer, max_seq_len, subwords,
                                            dtype, encode, progress)
    intents, slots, weight = encode_labels(examples, vocab, max_seq_len, intent_mode)
    if len(slots) != len(values):
        raise AssertionError(f"{len(slots)} slot labels for {len(values)} tokens")
    return TokenFeatureSet(examples, values, lengths, starts, intents, slots, weight,
                           feature_key)


def _token_values(examples: List[Example], encoder: TextEncoder, featurizer: TokenFeaturizer,
                  max_seq_len: int, subwords: bool, dtype, encode: Optional[Callable],
                  progress: Optional[Callable[[int], None]]):
    """-> (values of every real token, lengths, starts): the features of `featurize`."""
    if not examples:
        raise ValueError("no examples to featurize")
    if encoder.max_tokens < max_seq_len:
        raise ValueError(f"encoder max_tokens={encoder.max_tokens} < max_seq_len={max_seq_len}")
    chunks = []
    lengths = np.array([min(len(ex.tokens), max_seq_len) for ex in examples], np.int32)
    for lo in range(0, len(examples), CHUNK):
        part = examples[lo:lo + CHUNK]
        tokens = [list(ex.tokens[:max_seq_len]) for ex in part]
        if encode is not None:
            cp = encode(tokens)[:, :max_seq_len]
        else:
            cp = (encoder.encode_subwords_batch(tokens) if subwords
                  else encoder.encode_tokens_batch(tokens))[:, :max_seq_len]
        values, _ = featurizer(cp)
        live = np.arange(values.shape[1])[None, :] < lengths[lo:lo + CHUNK, None]
        chunks.append(np.asarray(values)[live].astype(dtype))
        if progress is not None:
            progress(lo + len(part))
    values = np.concatenate(chunks, axis=0)
    starts = np.concatenate([[0], np.cumsum(lengths[:-1], dtype=np.int64)]).astype(np.int64)
    return values, lengths, starts


# -- seq2seq: the same cached token features, with decoder inputs and targets -------------------

@dataclasses.dataclass
class Seq2SeqFeatureSet:
    """Ragged per-token features of a list of examples with their seq2seq targets (pQRNN-MAtt).

    Attributes:
      examples, values, lengths, starts, feature_key: as `TokenFeatureSet`.
      decoder_inputs: int32 `[N, max_target_len]` (`<bos>` + targets shifted, `<pad>` after).
      targets: int32 `[N, max_target_len]` (`OutputVocab.encode` ids, `<eos>` last, `<pad>` after).
      target_lengths: int32 `[N]` real target ids; 0 for an example whose parse could not be
        encoded (kept only when featurized with `skip_unencodable=False`: decoding and scoring
        need every example, training only those with targets).
      skipped: reason code (`TargetError.reason`) -> examples left out or without targets.
      samples: reason code -> the first few `source: message` strings.
    """

    examples: List[Example]
    values: np.ndarray
    lengths: np.ndarray
    starts: np.ndarray
    decoder_inputs: np.ndarray
    targets: np.ndarray
    target_lengths: np.ndarray
    feature_key: str = "projection"
    skipped: Dict[str, int] = dataclasses.field(default_factory=dict)
    samples: Dict[str, List[str]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.examples)

    def encoder_features(self, index: Sequence[int]) -> Dict[str, np.ndarray]:
        """The encoder inputs of the examples `index`, padded to their longest source."""
        index = np.asarray(index, np.int64)
        lengths = self.lengths[index]
        t = max(int(lengths.max()) if len(index) else 1, 1)
        mask = (np.arange(t)[None, :] < lengths[:, None])
        rows, cols = np.nonzero(mask)
        values = np.zeros((len(index), t) + self.values.shape[1:], self.values.dtype)
        values[rows, cols] = self.values[self.starts[index][rows] + cols]
        return {self.feature_key: values, "token_mask": mask.astype(np.int32)}

    def batch(self, index: Sequence[int]) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
        """`({feature_key, "token_mask", "decoder_inputs"}, {"targets"})`: sources padded to the
        longest source of the batch, decoder inputs and targets cut to its longest target."""
        index = np.asarray(index, np.int64)
        features = self.encoder_features(index)
        tb = max(int(self.target_lengths[index].max()) if len(index) else 1, 1)
        features["decoder_inputs"] = self.decoder_inputs[index, :tb]
        return features, {"targets": self.targets[index, :tb]}

    def skipped_summary(self) -> str:
        """`N (reason n, ...)`, or `none`."""
        total = sum(self.skipped.values())
        if not total:
            return "none"
        reasons = ", ".join(f"{k} {n}" for k, n in sorted(self.skipped.items(), key=lambda kv: -kv[1]))
        return f"{total} ({reasons})"


def seq2seq_target(vocab, example: Example, max_seq_len: int, max_target_len: int):
    """The `TeacherForcing` rows of one example: its parse encoded over its first `max_seq_len`
    tokens (what the encoder sees). Raises `TargetError`; a word beyond the first `max_seq_len`
    tokens gives the reason `position_beyond_max_source_len`."""
    from prado_tiny.data.seq2seq_targets import SourcePositionError, TargetError
    tokens = list(example.tokens)
    try:
        ids = vocab.encode(example, tokens[:max_seq_len])
    except TargetError as e:
        if len(tokens) > max_seq_len and not isinstance(e, SourcePositionError):
            try:  # over every token: does the word exist beyond the cut?
                vocab.encode(example, tokens)
            except SourcePositionError as beyond:
                raise beyond from None
            except TargetError:
                pass
        raise
    return vocab.teacher_forcing(ids, max_target_len, source=example.source)


def featurize_seq2seq(examples: Sequence[Example], encoder: TextEncoder, featurizer: TokenFeaturizer,
                      vocab, max_seq_len: int, max_target_len: int, dtype=np.int8,
                      feature_key: str = "projection", skip_unencodable: bool = True,
                      keep_samples: int = 5, encode: Optional[Callable] = None) -> Seq2SeqFeatureSet:
    """Token features (as `featurize`, whole-token codepoints) plus seq2seq targets.

    Args:
      examples: the examples (those without a parse have no target: reason `no_parse`).
      encoder, featurizer, max_seq_len, dtype, feature_key, encode: as `featurize` (default
        input: whole-token codepoints).
      vocab: the `OutputVocab`.
      max_target_len: decoder positions (`<eos>` included); a longer target is `target_too_long`.
      skip_unencodable: leave out the examples whose parse cannot be encoded (training); else
        keep them with `target_lengths` 0 (evaluation scores every example). Either way they
        are counted in `skipped` by reason.
      keep_samples: messages kept per reason (`samples`).
    """
    from prado_tiny.data.seq2seq_targets import TargetError
    examples = list(examples)
    kept, rows = [], []
    skipped: Dict[str, int] = {}
    samples: Dict[str, List[str]] = {}
    for ex in examples:
        try:
            row = seq2seq_target(vocab, ex, max_seq_len, max_target_len)
        except TargetError as e:
            skipped[e.reason] = skipped.get(e.reason, 0) + 1
            bucket = samples.setdefault(e.reason, [])
            if len(bucket) < keep_samples:
                bucket.append(str(e))
            if skip_unencodable:
                continue
            row = None
        kept.append(ex)
        rows.append(row)
    if not kept:
        reasons = ", ".join(f"{k} {n}" for k, n in skipped.items())
        raise ValueError(f"none of the {len(examples)} examples has an encodable parse ({reasons})")
    values, lengths, starts = _token_values(kept, encoder, featurizer, max_seq_len, False, dtype,
                                            encode, None)
    n = len(kept)
    dec = np.zeros((n, max_target_len), np.int32)
    tgt = np.zeros((n, max_target_len), np.int32)
    tlen = np.zeros(n, np.int32)
    for i, row in enumerate(rows):
        if row is not None:
            dec[i], tgt[i], tlen[i] = row.inputs, row.targets, row.length
    return Seq2SeqFeatureSet(kept, values, lengths, starts, dec, tgt, tlen, feature_key,
                             skipped, samples)
