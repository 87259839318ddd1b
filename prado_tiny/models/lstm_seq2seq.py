"""The LSTM seq2seq baseline of pQRNN-MAtt: subword embeddings, a BiLSTM encoder, an attentional
LSTM decoder that generates the same ontology + pointer ids.

The baseline pQRNN-MAtt (Kandoor, "Tiny Neural Models for Seq2Seq", arXiv 2108.03340) is compared
with: an LSTM encoder-decoder with embeddings and attention. Here the embeddings are WordPiece
pieces learned on the training split of every language (a token is the sum of its pieces,
`PieceEmbedding`, as in the flat BiLSTM baseline), since no pre-trained table may be downloaded;
the encoder is a stack of bidirectional LSTMs (Keras' standard LSTM, full gates); the decoder an
LSTM stack whose first state comes from the mean encoder state (a learned bridge), with global
"general" attention over the encoder (Luong et al., arXiv 1508.04025: the attentional state
`tanh(W_c [h_t; context_t])` feeds the output layer, no input feeding so that teacher forcing runs
every position at once). The output layer scores the `OutputVocab` of
`prado_tiny.data.seq2seq_targets` exactly as pQRNN-MAtt does: a projection plus, on the pointer
ids, a content score between the attentional state and the encoder state of each source token
(`add_pointer_scores`). Same targets, trainer, decoding (`KerasStepper`, greedy and beam search) and
scores as pQRNN-MAtt, so the two compare on the same examples.

It is a float reference, as in the paper: trained without QAT and evaluated from its folder
(`prado-eval --model=DIR`); `prado-export` refuses it.

Two modes compute one function (a test checks them against each other): `model(inputs)` with
teacher forcing (`{"piece_ids", "token_mask", "decoder_inputs"}` -> logits `[B, T, V]`), and
`decoder_cache` / `initial_state(batch, cache)` / `decoder_step` one position at a time with the
LSTM states `{"h": [...], "c": [...]}` per decoder layer.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Optional

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.piece_embedding import PieceEmbedding
from prado_tiny.models.base import JointModel, ModelConfig, piece_token_mask
from prado_tiny.models.pqrnn_matt import (add_pointer_scores, decoder_inputs, sequence_loss,
                                          validate_seq2seq)


@dataclasses.dataclass
class LSTMSeq2SeqConfig(ModelConfig):
    """Every hyper-parameter of the LSTM seq2seq baseline; saved as JSON in the model folder.

    Attributes:
      output_vocab_size, pointer_offset, max_seq_len, max_target_len, mask_penalty,
        label_smoothing: as `PQRNNMAttConfig` (the same output vocabulary and loss).
      vocab_size: piece embedding rows (WordPiece vocabulary + 2: padding, out-of-vocabulary).
      embedding_dim: size of a piece embedding.
      state_dim: encoder LSTM state per direction (encoder outputs have 2 * state_dim).
      num_layers: bidirectional encoder LSTM layers.
      hidden_dim: decoder LSTM state, attentional state and output embedding size.
      num_decoder_layers: decoder LSTM layers.
      dropout: dropout on the embeddings and between encoder layers.
      decoder_dropout: dropout on the decoder embeddings and the attentional state.
    """

    output_vocab_size: int
    vocab_size: int
    pointer_offset: Optional[int] = None
    max_seq_len: int = 64
    embedding_dim: int = 256
    state_dim: int = 256
    num_layers: int = 2
    hidden_dim: int = 512
    num_decoder_layers: int = 2
    dropout: float = 0.0
    decoder_dropout: float = 0.0
    max_target_len: int = 64
    mask_penalty: float = 16.0
    label_smoothing: float = 0.1

    MODEL_NAME = "LSTM seq2seq"
    POSITIVE = ("output_vocab_size", "max_seq_len", "embedding_dim", "state_dim", "num_layers",
                "hidden_dim", "num_decoder_layers", "max_target_len")

    def validate(self) -> None:
        validate_seq2seq(self, ("dropout", "decoder_dropout", "label_smoothing"))
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be at least 3, got {self.vocab_size}")


@keras.utils.register_keras_serializable(package="prado_tiny")
class LSTMSeq2Seq(JointModel):
    """The LSTM encoder-decoder baseline (teacher-forcing call, one-step decoding).

    Args:
      config: an `LSTMSeq2SeqConfig` (or its dict).
      quantize: must stay False (a float baseline; accepted for the models' common signature).
      **kwargs: passed to `keras.Model`.

    Example:

    >>> model = LSTMSeq2Seq(LSTMSeq2SeqConfig(output_vocab_size=30, pointer_offset=22,
    ...                                       vocab_size=50, max_seq_len=8, embedding_dim=8,
    ...                                       state_dim=8, hidden_dim=16, max_target_len=10))
    >>> logits = model({"piece_ids": tf.ones([2, 8, 3], tf.int32),
    ...                 "decoder_inputs": tf.ones([2, 5], tf.int32)})
    >>> logits.shape
    TensorShape([2, 5, 30])
    """

    CONFIG_CLASS = LSTMSeq2SeqConfig

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(config, quantize, **kwargs)
        if self._quantize:
            raise ValueError("the LSTM seq2seq baseline is a float model: train it without QAT "
                             "(--qat_epochs=0)")
        c = self.config
        h, n = c.hidden_dim, c.num_decoder_layers
        self.embedding = PieceEmbedding(c.vocab_size, c.embedding_dim, name="embedding")
        self.drop = keras.layers.Dropout(c.dropout)
        self.encoder_lstms = [keras.layers.Bidirectional(
            keras.layers.LSTM(c.state_dim, return_sequences=True), name=f"encoder_{i}")
            for i in range(c.num_layers)]
        self.token_embedding = keras.layers.Embedding(c.output_vocab_size, h, name="token_embedding")
        self.decoder_drop = keras.layers.Dropout(c.decoder_dropout)
        # The first decoder state of every layer from the mean encoder state.
        self.bridge = keras.layers.Dense(n * h, activation="tanh", name="bridge")
        self.decoder_lstms = [keras.layers.LSTM(h, return_sequences=True, return_state=True,
                                                name=f"decoder_{i}") for i in range(n)]
        self.attention_query = keras.layers.Dense(2 * c.state_dim, use_bias=False,
                                                  name="attention_query")
        self.attentional = keras.layers.Dense(h, activation="tanh", name="attentional")
        self.output_head = keras.layers.Dense(c.output_vocab_size, name="output_head")
        self.pointers = c.pointer_offset is not None
        if self.pointers:
            self.pointer_query = keras.layers.Dense(h, name="pointer_query")
            self.pointer_key = keras.layers.Dense(h, name="pointer_key")

    # -- encoder and the output layer, shared by both modes ----------------------------------

    def encode(self, inputs, training=None):
        """Encoder states `[B, S, 2 * state_dim]` (zero at padding) and the mask `[B, S, 1]`."""
        ids = tf.cast(inputs["piece_ids"], tf.int32)
        mask = piece_token_mask(inputs, self.compute_dtype)
        x = self.drop(self.embedding(ids, training=training), training=training)
        keep = tf.cast(mask[..., 0], tf.bool)
        for i, lstm in enumerate(self.encoder_lstms):
            if i:
                x = self.drop(x, training=training)
            x = lstm(x, mask=keep, training=training)
        return x * mask, mask

    def _bridge(self, states, mask):
        mean = tf.reduce_sum(states, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)
        return tf.split(self.bridge(mean), self.config.num_decoder_layers, axis=-1)

    def _output(self, y, states, mask, pointer_keys, training):
        """Attention over the encoder, the attentional state and the output logits `[B, T, V]`."""
        c = self.config
        q = self.attention_query(y)
        scores = tf.matmul(q, states, transpose_b=True) / math.sqrt(2 * c.state_dim)
        scores += (tf.transpose(mask, [0, 2, 1]) - 1.0) * 1e9
        context = tf.matmul(tf.nn.softmax(scores, axis=-1), states)
        a = self.decoder_drop(self.attentional(tf.concat([y, context], -1)), training=training)
        logits = self.output_head(a)
        if not self.pointers:
            return logits
        pointer = tf.matmul(self.pointer_query(a), pointer_keys, transpose_b=True)
        return add_pointer_scores(logits, pointer / math.sqrt(c.hidden_dim), mask,
                                  c.pointer_offset, c.max_seq_len, c.mask_penalty)

    def _pointer_keys(self, states, mask):
        return self.pointer_key(states) * mask if self.pointers else None

    # -- teacher forcing ---------------------------------------------------------------------

    def call(self, inputs, training=None):
        states, mask = self.encode(inputs, training=training)
        ids = decoder_inputs(inputs, self.config.max_target_len)
        y = self.decoder_drop(self.token_embedding(ids), training=training)
        for lstm, h0 in zip(self.decoder_lstms, self._bridge(states, mask)):
            y, _, _ = lstm(y, initial_state=[h0, tf.zeros_like(h0)], training=training)
        return self._output(y, states, mask, self._pointer_keys(states, mask), training)

    def loss(self, targets, logits, per_example: bool = False):
        """Label-smoothed cross-entropy over non-pad targets (`sequence_loss`), as pQRNN-MAtt."""
        return sequence_loss(targets, logits, self.config.label_smoothing, per_example=per_example)

    # -- one step at a time ------------------------------------------------------------------

    def decoder_cache(self, inputs, training=None):
        """`{"states", "mask", "bridge" [B, layers * hidden]}` (+ `pointer_keys`), once per
        utterance."""
        if not self.built:
            self.ensure_built()
        states, mask = self.encode(inputs, training=training)
        cache = {"states": states, "mask": mask,
                 "bridge": tf.concat(self._bridge(states, mask), -1)}
        if self.pointers:
            cache["pointer_keys"] = self._pointer_keys(states, mask)
        return cache

    def step_signature(self):
        """`(state spec, cache spec)` with dynamic batch and source length (`KerasStepper`)."""
        c = self.config
        h, n = c.hidden_dim, c.num_decoder_layers
        state = {"h": [tf.TensorSpec([None, h], tf.float32)] * n,
                 "c": [tf.TensorSpec([None, h], tf.float32)] * n}
        cache = {"states": tf.TensorSpec([None, None, 2 * c.state_dim], tf.float32),
                 "mask": tf.TensorSpec([None, None, 1], tf.float32),
                 "bridge": tf.TensorSpec([None, n * h], tf.float32)}
        if self.pointers:
            cache["pointer_keys"] = tf.TensorSpec([None, None, h], tf.float32)
        return state, cache

    def initial_state(self, batch_size: int, cache=None):
        """`{"h": [...], "c": [...]}` per decoder layer: h from the cache's bridge (zeros without
        a cache), c zeros."""
        c = self.config
        h, n = c.hidden_dim, c.num_decoder_layers
        if cache is None:
            hs = [tf.zeros([batch_size, h]) for _ in range(n)]
        else:
            hs = tf.split(tf.convert_to_tensor(cache["bridge"], tf.float32), n, axis=-1)
        return {"h": list(hs), "c": [tf.zeros([batch_size, h]) for _ in range(n)]}

    def decoder_step(self, ids, state, cache, training=None):
        """One position for every row: `(logits [B, 1, V], new state)`; `ids` int32 `[B]`."""
        ids = tf.reshape(tf.cast(ids, tf.int32), [-1])
        y = self.decoder_drop(self.token_embedding(ids), training=training)
        hs, cs = [], []
        for lstm, h, c in zip(self.decoder_lstms, state["h"], state["c"]):
            y, (h, c) = lstm.cell(y, [h, c], training=training)
            hs.append(h)
            cs.append(c)
        logits = self._output(y[:, None, :], cache["states"], cache["mask"],
                              cache.get("pointer_keys"), training)
        return logits, {"h": hs, "c": cs}

    def ensure_built(self):
        """Creates every variable (one tiny call)."""
        self({"piece_ids": tf.ones([1, 1, 1], tf.int32), "token_mask": tf.ones([1, 1], tf.int32),
              "decoder_inputs": tf.ones([1, 1], tf.int32)}, training=False)
        return self
