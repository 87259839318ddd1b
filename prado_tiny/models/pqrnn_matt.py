"""pQRNN-MAtt: a pQRNN encoder and a merged-attention decoder that generates decoupled parses.

Follows Kandoor, "Tiny Neural Models for Seq2Seq" (arXiv 2108.03340): a projection-based
encoder-decoder for MTOP semantic parsing. The encoder is pQRNN's (Kaliamoorthi et al.,
arXiv 2101.08890) without its pooling and heads: ternary projection of each token, a dense
bottleneck, a stack of bidirectional QRNN layers, giving `[B, S, 2 * state_dim]` and the source
mask. The decoder embeds the previous output id and its position (learned tables), then runs
`num_decoder_layers` merged-attention layers (`MergedAttentionDecoderBlock`: a uniform causal
average over the previous positions plus multi-head cross-attention to the encoder) and scores
the output vocabulary of `prado_tiny.data.seq2seq_targets.OutputVocab`: specials, ontology tokens
and pointers `@i` ("copy source token i").

Pointer logits. The output projection alone can only learn *where* to copy from the decoder
state (position i as a class); with `pointer_offset` set, the logit of `@i` also gets a content
score `q_t . k_i / sqrt(hidden)` between the decoder output and the encoder state at position i
(the pointer-network attention of Vinyals et al., arXiv 1506.03134, added to the generator's
logits as in Jia & Liang, arXiv 1606.03622): copying then follows what a token *is* (a city, a
time) wherever it stands. Pointers beyond the source length get `-mask_penalty` (a finite
penalty, as in the blocks, so that the int8 logit range stays usable); decoding masks them out
entirely.

Two modes compute one function (a test checks the logits agree):

* `model(inputs, training)` (teacher forcing): `inputs` holds the encoder features in the pQRNN
  forms (`{"projection", "token_mask"}` cached on the host, or `{"codepoints"}` with the
  projection in the graph) and `decoder_inputs` int32 `[B, T]` (`<bos>` + targets shifted);
  returns logits `[B, T, output_vocab_size]`.
* `decoder_cache(inputs)` once per utterance (encoder, cross-attention keys and values per layer,
  pointer keys, source mask), `initial_state(batch)`, then `decoder_step(ids, state, cache)` per
  position with the state explicit (the running mean per layer and one int32 step count): what
  beam search and the exported one-step decoder run.

Quantization-aware like the other models (`quantize=True` or `set_quantize`): every activation has
a fake-quant range, embedding tables and kernels are int8 per tensor.

Decoding: `greedy_decode` and `beam_search` (GNMT length penalty, optional tree constraints) run
the host search of `prado_tiny.seq2seq_decoding` over a `KerasStepper`. Export (the conversion
behind `prado-export`, which adds the metadata: `prado_tiny.export.seq2seq`): `export_pqrnn_matt` writes an int8 encoder .tflite (codepoints -> the
decoder cache) and an int8 one-step decoder .tflite (previous id, step count, mean state per
layer and the cache -> logits and the new state), builtin ops only; `seq2seq_decoding.TFLiteStepper`
drives the pair with the same search.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import numpy as np
import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.fake_quant import FakeQuant, QuantizeSwitch, quantize_weight
from prado_tiny.layers.merged_attention import MergedAttentionDecoderBlock
from prado_tiny.layers.qrnn import QRNN
from prado_tiny.layers.quant_dense import QuantDense
from prado_tiny.models.base import JointModel, ModelConfig
from prado_tiny.models.pqrnn import ternary_inputs


def validate_seq2seq(config, fractions) -> None:
    """The checks every seq2seq config shares (no intent or slot heads, so `ModelConfig`'s do
    not apply): `POSITIVE` fields, `fractions` in [0, 1), a positive `mask_penalty`, and a
    `pointer_offset` that leaves exactly `max_seq_len` pointer ids at the end of the output."""
    for name in config.POSITIVE:
        if getattr(config, name) < 1:
            raise ValueError(f"{name} must be positive, got {getattr(config, name)}")
    for name in fractions:
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(config, name)}")
    if config.mask_penalty <= 0:
        raise ValueError(f"mask_penalty must be positive, got {config.mask_penalty}")
    if config.pointer_offset is not None and (
            config.pointer_offset < 1
            or config.output_vocab_size - config.pointer_offset != config.max_seq_len):
        raise ValueError(f"pointer_offset={config.pointer_offset} must leave exactly max_seq_len="
                         f"{config.max_seq_len} pointer ids below output_vocab_size="
                         f"{config.output_vocab_size}")


@dataclasses.dataclass
class PQRNNMAttConfig(ModelConfig):
    """Every hyper-parameter of a pQRNN-MAtt; saved as JSON in the model folder.

    Attributes:
      output_vocab_size: output ids (`OutputVocab.size`).
      pointer_offset: id of `@0` (`OutputVocab.pointer_offset`): enables the content pointer
        scores on the `max_seq_len` pointer ids `pointer_offset..output_vocab_size-1`. None: the
        output projection alone scores them.
      max_seq_len: source tokens (the encoder's unrolled length in export; pointer count).
      num_features, seed: the ternary projection (F features per token; the hash seed).
      bottleneck_dim: B, the dense bottleneck after the projection.
      state_dim: QRNN state size per direction (encoder outputs have 2 * state_dim features).
      num_layers: bidirectional QRNN layers.
      kernel_width: width of the QRNN gate convolution.
      zoneout: zoneout probability p of the first QRNN layer; layer i uses p^(i+1).
      dropout: dropout between QRNN layers.
      max_target_len: output positions (position table rows; `<eos>` included).
      hidden_dim: decoder width.
      num_decoder_layers: merged-attention decoder layers.
      num_heads: cross-attention heads (divides hidden_dim).
      ff_dim: decoder feed-forward size.
      decoder_dropout: dropout on the decoder embeddings and inside the decoder layers.
      mask_penalty: logit penalty of padded source positions (cross-attention and pointers).
      label_smoothing: epsilon of the label-smoothed cross-entropy.
      int8_internals: QAT also rounds the tensors the int8 converter adds inside the decoder's
        LayerNorms and attention scores (`MergedAttentionDecoderBlock`) and the raw pointer
        scores, so the exported step model computes what was trained. False (the default of a
        model.json without it): the layout of models trained before the option.
    """

    output_vocab_size: int
    pointer_offset: Optional[int] = None
    max_seq_len: int = 64
    num_features: int = 512
    seed: int = 0
    bottleneck_dim: int = 256
    state_dim: int = 128
    num_layers: int = 2
    kernel_width: int = 3
    zoneout: float = 0.0
    dropout: float = 0.0
    max_target_len: int = 64
    hidden_dim: int = 128
    num_decoder_layers: int = 2
    num_heads: int = 4
    ff_dim: int = 256
    decoder_dropout: float = 0.0
    mask_penalty: float = 16.0
    label_smoothing: float = 0.1
    int8_internals: bool = False

    MODEL_NAME = "pQRNN-MAtt"
    POSITIVE = ("output_vocab_size", "max_seq_len", "num_features", "bottleneck_dim", "state_dim",
                "num_layers", "kernel_width", "max_target_len", "hidden_dim",
                "num_decoder_layers", "num_heads", "ff_dim")

    def validate(self) -> None:
        validate_seq2seq(self, ("zoneout", "dropout", "decoder_dropout", "label_smoothing"))
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={self.hidden_dim} is not divisible by "
                             f"num_heads={self.num_heads}")

    @classmethod
    def for_vocab(cls, vocab, **kwargs) -> "PQRNNMAttConfig":
        """A config whose output layer matches `vocab` (an `OutputVocab`): its size, pointer
        offset and `max_source_len` as `max_seq_len`; other fields from `kwargs`."""
        return cls(output_vocab_size=vocab.size, pointer_offset=vocab.pointer_offset,
                   max_seq_len=vocab.max_source_len, **kwargs)


@keras.utils.register_keras_serializable(package="prado_tiny")
class PQRNNEncoder(QuantizeSwitch, keras.layers.Layer):
    """pQRNN's encoder without pooling: projection, bottleneck, bidirectional QRNN stack.

    The same layers, in the same order and with the same quantization points, as
    `prado_tiny.models.pqrnn.PQRNN` up to its heads.

    Args:
      num_features, seed: the ternary projection (used for `codepoints` inputs only).
      bottleneck_dim, state_dim, num_layers, kernel_width, zoneout, dropout: as `PQRNNConfig`.
      quantize: fake-quantize weights and activations (QAT).
      **kwargs: passed to `keras.layers.Layer`.

    Call args: `inputs`, a dict with `projection` `[B, S, F]` and `token_mask` `[B, S]`, or
    `codepoints` int32 `[B, S, C]`; `training`. Returns `(states [B, S, 2 * state_dim], zero at
    padding; mask float [B, S, 1])`.

    Example:

    >>> enc = PQRNNEncoder(num_features=32, bottleneck_dim=16, state_dim=8, num_layers=1)
    >>> states, mask = enc({"codepoints": tf.constant([[[104, 105], [0, 0]]])})
    >>> states.shape, mask.numpy().ravel().tolist()
    (TensorShape([1, 2, 16]), [1.0, 0.0])
    """

    def __init__(self, num_features: int, bottleneck_dim: int, state_dim: int, num_layers: int,
                 kernel_width: int = 3, zoneout: float = 0.0, dropout: float = 0.0, seed: int = 0,
                 quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.num_features, self.seed = int(num_features), int(seed)
        self.bottleneck_dim, self.state_dim = int(bottleneck_dim), int(state_dim)
        self.num_layers, self.kernel_width = int(num_layers), int(kernel_width)
        self.zoneout, self.dropout_rate = float(zoneout), float(dropout)
        self._quantize = q = bool(quantize)
        self.bottleneck = QuantDense(self.bottleneck_dim, activation="relu", quantize=q,
                                     name="bottleneck")
        self.masked_quant = FakeQuant(q, name="masked_quant")
        self.qrnn = [QRNN(self.state_dim, self.kernel_width, self.zoneout ** (i + 1), quantize=q,
                          name=f"qrnn_{i}") for i in range(self.num_layers)]
        self.drop = keras.layers.Dropout(self.dropout_rate)
        self._projection = None

    def _quantized_layers(self):
        return [self.bottleneck, self.masked_quant, *self.qrnn]

    @property
    def projection(self):
        """The in-graph ternary projection (created on first use: training does not need it)."""
        if self._projection is None:
            from prado_tiny.layers.ternary_projection import TernaryProjection
            self._projection = TernaryProjection(self.num_features, self.seed, name="projection")
        return self._projection

    def call(self, inputs, training=None):
        features, mask = ternary_inputs(inputs, self)
        x = self.masked_quant(self.bottleneck(features, training=training) * mask,
                              training=training)
        for layer in self.qrnn:
            x = self.drop(layer(x, mask, training=training), training=training)
        return x, mask

    def get_config(self):
        config = super().get_config()
        config.update(num_features=self.num_features, bottleneck_dim=self.bottleneck_dim,
                      state_dim=self.state_dim, num_layers=self.num_layers,
                      kernel_width=self.kernel_width, zoneout=self.zoneout,
                      dropout=self.dropout_rate, seed=self.seed, quantize=self._quantize)
        return config


@keras.utils.register_keras_serializable(package="prado_tiny")
class QuantEmbedding(QuantizeSwitch, keras.layers.Layer):
    """A learned table looked up by int ids: GATHER from an int8 (per-tensor) table when quantized.

    Args:
      rows, dim: table shape.
      stddev: standard deviation of the normal initializer.
      quantize: fake-quantize the table (QAT); the GATHER output then has the table's scale.
      **kwargs: passed to `keras.layers.Layer`.

    Example:

    >>> emb = QuantEmbedding(rows=10, dim=4)
    >>> emb(tf.constant([[1, 2, 3]])).shape
    TensorShape([1, 3, 4])
    """

    def __init__(self, rows: int, dim: int, stddev: float = 1.0, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if rows < 1 or dim < 1:
            raise ValueError(f"rows and dim must be positive, got {rows}, {dim}")
        self.rows, self.dim, self.stddev = int(rows), int(dim), float(stddev)
        self._quantize = bool(quantize)

    def build(self, input_shape):
        self.table = self.add_weight("table", shape=(self.rows, self.dim),
                                     initializer=keras.initializers.RandomNormal(stddev=self.stddev))
        super().build(input_shape)

    def call(self, ids):
        table = quantize_weight(self.table) if self._quantize else self.table
        return tf.gather(table, tf.cast(ids, tf.int32))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.update(rows=self.rows, dim=self.dim, stddev=self.stddev, quantize=self._quantize)
        return config


def add_pointer_scores(logits, scores, mask, pointer_offset: int, max_seq_len: int,
                       mask_penalty: float):
    """`logits [B, T, V]` plus the content scores `[B, T, S]` on the pointer ids.

    Padded source positions (`mask [B, S, 1]` is 0) get `-mask_penalty`; a batch cut to its
    longest source has `S < max_seq_len`: the missing pointers are padding too. Shared by the
    seq2seq models (pQRNN-MAtt, the LSTM baseline)."""
    key_mask = tf.transpose(mask, [0, 2, 1])  # [B, 1, S]
    scores = scores + (key_mask - 1.0) * mask_penalty
    s = scores.shape[-1]
    if s is None or s != max_seq_len:
        missing = max_seq_len - tf.shape(scores)[-1]
        scores = tf.pad(scores, [[0, 0], [0, 0], [0, missing]], constant_values=-mask_penalty)
    return logits + tf.pad(scores, [[0, 0], [0, 0], [pointer_offset, 0]])


def decoder_inputs(inputs, max_target_len: int):
    """`inputs["decoder_inputs"]` as int32 `[B, T]`; a ValueError when T > max_target_len."""
    ids = tf.cast(inputs["decoder_inputs"], tf.int32)
    t = ids.shape[1]
    if t is not None and t > max_target_len:
        raise ValueError(f"{t} decoder positions exceed max_target_len={max_target_len}")
    return ids


def sequence_loss(targets, logits, label_smoothing: float = 0.0, pad_id: int = 0,
                  per_example: bool = False):
    """Label-smoothed cross-entropy over the non-pad target positions.

    The smoothed target is `(1 - eps) * one_hot + eps / V` (Szegedy et al., arXiv 1512.00567).

    Args:
      targets: int `[B, T]`, `pad_id` after the end.
      logits: float `[B, T, V]`.
      label_smoothing: eps.
      pad_id: the padding id (no loss there).
      per_example: return `[B]` (the mean over each example's positions, for
        `tf.nn.compute_average_loss`) instead of the mean over every real position of the batch.
    """
    targets = tf.cast(targets, tf.int32)
    logits = tf.cast(logits, tf.float32)
    mask = tf.cast(tf.not_equal(targets, pad_id), tf.float32)
    logp = tf.nn.log_softmax(logits, axis=-1)
    nll = -tf.gather(logp, targets, batch_dims=2)
    tok = (1.0 - label_smoothing) * nll - label_smoothing * tf.reduce_mean(logp, axis=-1)
    if per_example:
        return tf.reduce_sum(tok * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
    return tf.reduce_sum(tok * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


@keras.utils.register_keras_serializable(package="prado_tiny")
class PQRNNMAtt(JointModel):
    """The pQRNN-MAtt seq2seq model (teacher-forcing call, one-step decoding).

    Args:
      config: a `PQRNNMAttConfig` (or its dict).
      quantize: fake-quantize weights and activations (QAT); `set_quantize` switches it later.
      **kwargs: passed to `keras.Model`.

    Example:

    >>> model = PQRNNMAtt(PQRNNMAttConfig(output_vocab_size=30, pointer_offset=22, max_seq_len=8,
    ...                                   num_features=32, bottleneck_dim=16, state_dim=8,
    ...                                   max_target_len=10, hidden_dim=16, num_heads=2, ff_dim=32))
    >>> logits = model({"codepoints": tf.zeros([2, 8, 6], tf.int32),
    ...                 "decoder_inputs": tf.ones([2, 5], tf.int32)})
    >>> logits.shape
    TensorShape([2, 5, 30])
    """

    CONFIG_CLASS = PQRNNMAttConfig

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(config, quantize, **kwargs)
        c, q = self.config, self._quantize
        h = c.hidden_dim
        self.encoder = PQRNNEncoder(c.num_features, c.bottleneck_dim, c.state_dim, c.num_layers,
                                    c.kernel_width, c.zoneout, c.dropout, c.seed, quantize=q,
                                    name="encoder")
        self.token_embedding = QuantEmbedding(c.output_vocab_size, h, stddev=1.0, quantize=q,
                                              name="token_embedding")
        self.position_embedding = QuantEmbedding(c.max_target_len, h, stddev=0.1, quantize=q,
                                                 name="position_embedding")
        # The first block's x_t needs a range of its own (the exported step model's input).
        self.decoder_input_quant = FakeQuant(q, name="decoder_input_quant")
        self.decoder_drop = keras.layers.Dropout(c.decoder_dropout)
        self.blocks = [MergedAttentionDecoderBlock(c.num_heads, c.ff_dim, c.decoder_dropout,
                                                   mask_penalty=c.mask_penalty,
                                                   max_steps=c.max_target_len, quantize=q,
                                                   int8_internals=c.int8_internals,
                                                   name=f"decoder_{i}")
                       for i in range(c.num_decoder_layers)]
        self.output_head = QuantDense(c.output_vocab_size, quantize=q, name="output_head")
        self.pointers = c.pointer_offset is not None
        if self.pointers:
            self.pointer_query = QuantDense(h, quantize=q, name="pointer_query")
            self.pointer_key = QuantDense(h, quantize=q, name="pointer_key")
            self.pointer_keys_quant = FakeQuant(q, name="pointer_keys_quant")
            self.pointer_scores_quant = FakeQuant(q, name="pointer_scores_quant")
            self.logits_quant = FakeQuant(q, name="logits_quant")
            # The int8 BATCH_MATMUL output before the 1/sqrt(d) scaling.
            self.raw_pointer_scores_quant = (FakeQuant(q, name="raw_pointer_scores_quant")
                                             if c.int8_internals else None)

    def _quantized_layers(self):
        layers = [self.encoder, self.token_embedding, self.position_embedding,
                  self.decoder_input_quant, *self.blocks, self.output_head]
        if self.pointers:
            layers += [self.pointer_query, self.pointer_key, self.pointer_keys_quant,
                       self.pointer_scores_quant, self.logits_quant]
            if self.raw_pointer_scores_quant is not None:
                layers.append(self.raw_pointer_scores_quant)
        return layers

    # -- pieces shared by both modes ---------------------------------------------------------

    def encode(self, inputs, training=None):
        """Encoder states `[B, S, 2 * state_dim]` and the source mask `[B, S, 1]`."""
        return self.encoder(inputs, training=training)

    def _pointer_keys(self, states, mask, training):
        keys = self.pointer_key(states, training=training) * mask  # zero score at padding
        return self.pointer_keys_quant(keys, training=training)

    def _embed(self, ids, positions, training):
        x = self.token_embedding(ids) + self.position_embedding(positions)
        return self.decoder_drop(self.decoder_input_quant(x, training=training), training=training)

    def _logits(self, y, pointer_keys, mask, training):
        """Output logits `[B, T, V]`: the projection plus, on the pointer ids, the content score."""
        logits = self.output_head(y, training=training)
        if not self.pointers:
            return logits
        c = self.config
        q = self.pointer_query(y, training=training)
        # An explicit TRANSPOSE: an int8 BATCH_MATMUL reading a model input with adj_y got a
        # float DEQUANTIZE/QUANTIZE pair from the converter.
        keys_t = tf.transpose(pointer_keys, [0, 2, 1])
        scores = tf.matmul(q, keys_t)
        if self.raw_pointer_scores_quant is not None:
            scores = self.raw_pointer_scores_quant(scores, training=training)
        scores = scores / math.sqrt(c.hidden_dim)
        scores = self.pointer_scores_quant(scores, training=training)
        return self.logits_quant(add_pointer_scores(logits, scores, mask, c.pointer_offset,
                                                    c.max_seq_len, c.mask_penalty),
                                 training=training)

    # -- teacher forcing ---------------------------------------------------------------------

    def call(self, inputs, training=None):
        states, mask = self.encode(inputs, training=training)
        ids = decoder_inputs(inputs, self.config.max_target_len)
        t = ids.shape[1]
        positions = tf.range(t if t is not None else tf.shape(ids)[1])[None, :]
        x = self._embed(ids, positions, training)
        for block in self.blocks:
            x = block(x, states, mask, training=training)
        keys = self._pointer_keys(states, mask, training) if self.pointers else None
        return self._logits(x, keys, mask, training)

    def loss(self, targets, logits, per_example: bool = False):
        """Label-smoothed (config `label_smoothing`) cross-entropy over non-pad targets; see
        `sequence_loss`."""
        return sequence_loss(targets, logits, self.config.label_smoothing, per_example=per_example)

    # -- one step at a time ------------------------------------------------------------------

    def decoder_cache(self, inputs, training=None):
        """What the decoder reads from the encoder, computed once per utterance: a dict with
        `keys`, `values` (lists over layers of `[B, S, hidden]`), `mask` `[B, S, 1]` and, with
        pointer scores, `pointer_keys` `[B, S, hidden]`."""
        if not self.built:
            self.ensure_built()
        states, mask = self.encode(inputs, training=training)
        cache = {"keys": [], "values": [], "mask": mask}
        for block in self.blocks:
            keys, values = block.encoder_kv(states, mask, training=training)
            cache["keys"].append(keys)
            cache["values"].append(values)
        if self.pointers:
            cache["pointer_keys"] = self._pointer_keys(states, mask, training)
        return cache

    def step_signature(self):
        """`(state spec, cache spec)`: the `tf.TensorSpec` structures of `decoder_step`'s state
        and cache with dynamic batch and source length (what `KerasStepper` traces)."""
        c = self.config
        h, n = c.hidden_dim, c.num_decoder_layers
        state = {"means": [tf.TensorSpec([None, 1, h], tf.float32)] * n,
                 "count": tf.TensorSpec([None, 1, 1], tf.int32)}
        kv = tf.TensorSpec([None, None, h], tf.float32)
        cache = {"keys": [kv] * n, "values": [kv] * n,
                 "mask": tf.TensorSpec([None, None, 1], tf.float32)}
        if self.pointers:
            cache["pointer_keys"] = kv
        return state, cache

    def initial_state(self, batch_size: int, cache=None):
        """The state before the first step: `{"means": [zeros [B, 1, hidden]] per layer,
        "count": zeros int32 [B, 1, 1]}` (count = the position about to be decoded); `cache`
        is not needed (the LSTM baseline's initial state reads it)."""
        h = self.config.hidden_dim
        return {"means": [tf.zeros([batch_size, 1, h]) for _ in self.blocks],
                "count": tf.zeros([batch_size, 1, 1], tf.int32)}

    def decoder_step(self, ids, state, cache, training=None):
        """One decoding position for every row: `(logits [B, 1, V], new state)`.

        Args:
          ids: int32 `[B]` or `[B, 1]`, the previous output id (`<bos>` first).
          state: from `initial_state` or the previous step.
          cache: from `decoder_cache` (rows reordered as the search needs).
        """
        ids = tf.reshape(tf.cast(ids, tf.int32), [-1, 1])
        count = tf.cast(state["count"], tf.int32)
        positions = tf.minimum(tf.reshape(count, [-1, 1]), self.config.max_target_len - 1)
        x = self._embed(ids, positions, training)
        means = []
        for block, mean, keys, values in zip(self.blocks, state["means"], cache["keys"],
                                             cache["values"]):
            x, (new_mean, _) = block.step(x, (mean, count), keys, values, cache["mask"],
                                          training=training)
            means.append(new_mean)
        keys = None
        if self.pointers:
            # Same range as the cache's (as the blocks do for their keys): an int8 step model's
            # input then has the encoder model's output scale.
            keys = self.pointer_keys_quant(cache["pointer_keys"], training=False)
        logits = self._logits(x, keys, cache["mask"], training)
        return logits, {"means": means, "count": count + 1}

    def ensure_built(self):
        """Creates every variable (one tiny call of each mode)."""
        c = self.config
        inputs = {"projection": tf.zeros([1, 1, c.num_features]),
                  "token_mask": tf.ones([1, 1], tf.int32),
                  "decoder_inputs": tf.ones([1, 1], tf.int32)}
        self(inputs, training=False)
        return self


class KerasStepper:
    """Drives a seq2seq model (`PQRNNMAtt`, `LSTMSeq2Seq`) for `prado_tiny.seq2seq_decoding` (encoder once, compiled steps).

    Args:
      model: the model (built on first use when needed): `decoder_cache`, `initial_state`,
        `decoder_step` and `step_signature`.

    The step runs as one `tf.function` with dynamic batch and source length, traced once.
    """

    def __init__(self, model: PQRNNMAtt):
        self.model = model.ensure_built() if not model.built else model
        c = model.config
        self.vocab_size = c.output_vocab_size
        self.pointer_offset = c.pointer_offset
        state_spec, cache_spec = model.step_signature()
        self._step = tf.function(lambda ids, state, cache: model.decoder_step(ids, state, cache),
                                 input_signature=[tf.TensorSpec([None], tf.int32), state_spec,
                                                  cache_spec])
        self._cache, self._cache_spec = None, None

    def _cache_fn(self, features: dict):
        """The encoder pass as one `tf.function` traced once per input form, with dynamic batch
        and (cached features) source length: a trace per padded length cost more than decoding.
        Codepoints keep their static tokens and chars (the in-graph projection needs them)."""
        def dims(k, v):
            shape = list(np.shape(v))
            return [None] + shape[1:] if k == "codepoints" else [None, None] + shape[2:]
        spec = {k: tf.TensorSpec(dims(k, v), tf.as_dtype(np.asarray(v).dtype))
                for k, v in features.items()}
        if self._cache is None or spec != self._cache_spec:
            model = self.model
            self._cache = tf.function(lambda inputs: model.decoder_cache(inputs),
                                      input_signature=[spec])
            self._cache_spec = spec
        return self._cache

    def start(self, features):
        features = dict(features)
        cache = tf.nest.map_structure(lambda t: t.numpy(), self._cache_fn(features)(features))
        n = cache["mask"].shape[0]
        state = tf.nest.map_structure(lambda t: np.asarray(t),
                                      self.model.initial_state(n, cache))
        num_source = cache["mask"][..., 0].sum(axis=1).round().astype(np.int64)
        return cache, state, num_source

    def step(self, ids, state, cache):
        logits, state = self._step(np.asarray(ids, np.int32), state, cache)
        return logits.numpy()[:, 0], tf.nest.map_structure(lambda t: t.numpy(), state)


def _features(features):
    return {k: v for k, v in dict(features).items() if k != "decoder_inputs"}


def greedy_decode(model: PQRNNMAtt, features, max_len: Optional[int] = None, vocab=None,
                  constrain: bool = False, stepper: Optional[KerasStepper] = None):
    """Greedy decoding of a batch (see `prado_tiny.seq2seq_decoding.greedy_search`).

    Args:
      model: the model.
      features: encoder inputs of a batch (`projection` + `token_mask`, or `codepoints`).
      max_len: most output ids (default `max_target_len`).
      vocab: the `OutputVocab` (needed with `constrain`).
      constrain: only ids that keep a well-formed tree.
      stepper: a `KerasStepper` to reuse (its traced step) across calls.

    Returns: per example the output ids (no `<bos>`; `<eos>` last when emitted).
    """
    from prado_tiny.seq2seq_decoding import greedy_search
    stepper = stepper or KerasStepper(model)
    return greedy_search(stepper, _features(features), max_len or model.config.max_target_len,
                         vocab, constrain)


def beam_search(model: PQRNNMAtt, features, beam_width: int = 4, length_penalty_alpha: float = 0.6,
                max_len: Optional[int] = None, constrain: bool = True, vocab=None,
                stepper: Optional[KerasStepper] = None, return_all: bool = False):
    """Beam search with the GNMT length penalty (see `prado_tiny.seq2seq_decoding.beam_search`);
    constrained to well-formed trees by default (then `vocab` is required). Arguments as
    `greedy_decode`, plus `beam_width`, `length_penalty_alpha` and `return_all`."""
    from prado_tiny.seq2seq_decoding import beam_search as search
    stepper = stepper or KerasStepper(model)
    return search(stepper, _features(features), beam_width, length_penalty_alpha,
                  max_len or model.config.max_target_len, vocab, constrain, return_all)


# -- export: an int8 encoder .tflite and an int8 one-step decoder .tflite -----------------------

def _outputs(tensors: dict):
    """Identity layers that name a functional model's outputs (the .tflite signature keys)."""
    return {name: keras.layers.Activation("linear", name=name)(t) for name, t in tensors.items()}


class _EncoderExport(keras.layers.Layer):
    """codepoints -> the decoder cache, as one layer (methods other than `call` are not
    traceable on symbolic Keras tensors)."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def call(self, codepoints):
        cache = self.model.decoder_cache({"codepoints": codepoints}, training=False)
        out = {"mask": cache["mask"]}
        for i, (k, v) in enumerate(zip(cache["keys"], cache["values"])):
            out[f"keys_{i}"], out[f"values_{i}"] = k, v
        if "pointer_keys" in cache:
            out["pointer_keys"] = cache["pointer_keys"]
        return out


class _StepExport(keras.layers.Layer):
    """One decoder step with every state and cached tensor an explicit input or output."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model

    def call(self, inputs):
        n = len(self.model.blocks)
        state = {"means": [inputs[f"mean_{i}"] for i in range(n)], "count": inputs["count"]}
        cache = {"keys": [inputs[f"keys_{i}"] for i in range(n)],
                 "values": [inputs[f"values_{i}"] for i in range(n)], "mask": inputs["mask"]}
        if self.model.pointers:
            cache["pointer_keys"] = inputs["pointer_keys"]
        logits, new = self.model.decoder_step(inputs["token"], state, cache, training=False)
        out = {"logits": logits, "new_count": new["count"]}
        out.update({f"new_mean_{i}": m for i, m in enumerate(new["means"])})
        return out


def encoder_export_model(model: PQRNNMAtt, max_chars: int) -> keras.Model:
    """Functional model for conversion: int32 `codepoints [1, max_seq_len, max_chars]` ->
    `keys_i`, `values_i` `[1, S, hidden]` per layer, `pointer_keys` `[1, S, hidden]` (with pointer
    scores) and `mask` `[1, S, 1]`."""
    if not model.built:
        model.ensure_built()
    inp = keras.Input((model.config.max_seq_len, max_chars), batch_size=1, dtype="int32",
                      name="codepoints")
    return keras.Model(inp, _outputs(_EncoderExport(model)(inp)), name="pqrnn_matt_encoder")


def step_export_model(model: PQRNNMAtt) -> keras.Model:
    """Functional model for conversion of one decoder step: inputs `token` int32 `[1, 1]`,
    `count` int32 `[1, 1, 1]`, `mean_i` `[1, 1, hidden]`, `keys_i`, `values_i`, `pointer_keys`
    `[1, S, hidden]`, `mask` `[1, S, 1]`; outputs `logits [1, 1, V]`, `new_count`, `new_mean_i`."""
    if not model.built:
        model.ensure_built()
    c = model.config
    h, s = c.hidden_dim, c.max_seq_len
    specs = {"token": ((1,), "int32"), "count": ((1, 1), "int32"), "mask": ((s, 1), "float32")}
    for i in range(c.num_decoder_layers):
        specs.update({f"mean_{i}": ((1, h), "float32"), f"keys_{i}": ((s, h), "float32"),
                      f"values_{i}": ((s, h), "float32")})
    if model.pointers:
        specs["pointer_keys"] = ((s, h), "float32")
    ins = {n: keras.Input(shape, batch_size=1, dtype=d, name=n) for n, (shape, d) in specs.items()}
    return keras.Model(ins, _outputs(_StepExport(model)(ins)), name="pqrnn_matt_step")


class _RecordingStepper(KerasStepper):
    """A Keras stepper that keeps every row's step inputs (representative data for the step
    model's conversion)."""

    def __init__(self, model):
        super().__init__(model)
        self.samples = []

    def step(self, ids, state, cache):
        n = len(self.model.blocks)
        for r in range(len(ids)):
            if ids[r] == 0:  # a finished row fed <pad>: never a real input
                continue
            sample = {"token": np.asarray(ids[r:r + 1], np.int32).reshape(1, 1),
                      "count": state["count"][r:r + 1], "mask": cache["mask"][r:r + 1]}
            for i in range(n):
                sample[f"mean_{i}"] = state["means"][i][r:r + 1]
                sample[f"keys_{i}"] = cache["keys"][i][r:r + 1]
                sample[f"values_{i}"] = cache["values"][i][r:r + 1]
            if "pointer_keys" in cache:
                sample["pointer_keys"] = cache["pointer_keys"][r:r + 1]
            self.samples.append(sample)
        return super().step(ids, state, cache)


def record_step_samples(model: PQRNNMAtt, codepoints, max_samples: int, seed: int = 0) -> list:
    """The one-step decoder's inputs along the Keras model's greedy decoding of `codepoints`
    (`_RecordingStepper`), at most `max_samples` of them drawn at random (in decoding order).

    Args:
      model: a built `PQRNNMAtt`.
      codepoints: int32 `[N, max_seq_len, max_chars]` (`TextEncoder.encode_tokens_batch`).
      max_samples: most step samples returned.
      seed: seed of the draw (the export's calibration uses 0).

    Returns: dicts `{step_export_model input name: [1, ...] array}`.
    """
    from prado_tiny.seq2seq_decoding import greedy_search
    recorder = _RecordingStepper(model)
    greedy_search(recorder, {"codepoints": np.asarray(codepoints, np.int32)},
                  model.config.max_target_len)
    steps = recorder.samples
    if len(steps) > max_samples:
        rng = np.random.default_rng(seed)
        steps = [steps[i] for i in sorted(rng.choice(len(steps), max_samples, replace=False))]
    return steps


def _convert(keras_model, samples) -> bytes:
    """`prado_tiny.export.tflite.convert` with named multi-input representative samples and int8
    float inputs (int32 inputs: codepoints, token, count stay int32)."""
    from prado_tiny.export.tflite import convert
    return convert(keras_model, samples, int8_float_inputs=True)


def export_pqrnn_matt(model: PQRNNMAtt, calibration_codepoints, output_dir: Optional[str] = None,
                      max_step_samples: int = 2048):
    """Converts `model` to an int8 encoder .tflite and an int8 one-step decoder .tflite.

    The conversion behind `prado-export` (`prado_tiny.export.seq2seq.export` embeds the metadata
    and writes the files `Predictor` reads). The encoder is
    calibrated on the calibration utterances, the decoder on the step inputs of the Keras
    model's own greedy decoding of them (what it will see under a host search).

    Args:
      model: a built `PQRNNMAtt` (QAT ranges used when `quantize` is on).
      calibration_codepoints: int32 `[N, max_seq_len, max_chars]` (`TextEncoder.encode_tokens_batch`).
      output_dir: when given, writes `encoder.tflite` and `decoder.tflite` there.
      max_step_samples: most decoder step samples used for calibration.

    Returns: `{"encoder": bytes, "decoder": bytes, "reports": {name: ModelReport}}`; raises
    `NotBuiltinInt8Error` when a model is not builtin-only integer.
    """
    import os

    from prado_tiny.export.inspect import check_builtin_int8
    cp = np.asarray(calibration_codepoints, np.int32)
    if cp.ndim != 3 or cp.shape[1] != model.config.max_seq_len:
        raise ValueError(f"calibration codepoints must be [N, {model.config.max_seq_len}, chars], "
                         f"got {cp.shape}")
    steps = record_step_samples(model, cp, max_step_samples)
    encoder = _convert(encoder_export_model(model, cp.shape[2]),
                       [{"codepoints": cp[i:i + 1]} for i in range(len(cp))])
    decoder = _convert(step_export_model(model), steps)
    reports = {name: check_builtin_int8(data, raise_on_violation=True)
               for name, data in (("encoder", encoder), ("decoder", decoder))}
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
        for name, data in (("encoder", encoder), ("decoder", decoder)):
            with open(os.path.join(output_dir, f"{name}.tflite"), "wb") as f:
                f.write(data)
    return {"encoder": encoder, "decoder": decoder, "reports": reports}
