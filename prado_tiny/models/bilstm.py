"""The BiLSTM baseline: WordPiece embeddings, a bidirectional LSTM stack, the shared joint heads.

The embedding baseline of pQRNN's paper (Kaliamoorthi et al., arXiv 2101.08890: "an LSTM with
embeddings"), trained by the same trainer on the same data as the projection models, and the
uncompressed reference of the embedding-compression work (Sathyendra et al., arXiv 2012.00124).
Its embedding table holds a vector per WordPiece piece (vocabulary learned on the training
split of every language); a token is the sum of its pieces (`PieceEmbedding`).

Input: `{"piece_ids": int32 [B, T, P]}` (`TextEncoder.encode_piece_ids`), plus `token_mask` in
training (derived from the ids otherwise). The exported .tflite takes the same ids: an app splits
tokens with the WordPiece vocabulary embedded in the file's metadata and looks the pieces up.
With `embedding="codes"` the table is compressed into compositional codes learned jointly
with the task (`CodeEmbedding`; frozen when QAT starts). Quantization-aware like the projection models (`--qat_epochs`); `prado-export` makes it int8.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.attention_pooling import AttentionPooling
from prado_tiny.layers.code_embedding import CodeEmbedding
from prado_tiny.layers.fake_quant import FakeQuant
from prado_tiny.layers.lstm import BiLSTM
from prado_tiny.layers.piece_embedding import PieceEmbedding
from prado_tiny.layers.quant_dense import QuantDense
from prado_tiny.models.base import JointModel, ModelConfig, piece_token_mask


@dataclasses.dataclass
class BiLSTMConfig(ModelConfig):
    """Every hyper-parameter of the BiLSTM baseline; saved as JSON in the model folder.

    Attributes:
      num_intents, num_slot_tags: output sizes (from the label vocabulary).
      vocab_size: embedding rows (WordPiece vocabulary + 2: padding and out-of-vocabulary).
      max_seq_len: tokens per example in the exported model.
      embedding_dim: size of a piece embedding.
      state_dim: LSTM state per direction.
      num_layers: BiLSTM layers.
      dropout: dropout on the embeddings, between layers and before the heads.
      intent_mode: `joint` or `multi_label`.
      embedding: `table` (one learned vector per piece) or `codes` (the table compressed into
        compositional codes learned with the task, `CodeEmbedding`).
      num_codebooks, codebook_size, code_temperature: M, K and the Gumbel-softmax temperature
        of the `codes` embedding.
    """

    num_intents: int
    num_slot_tags: int
    vocab_size: int
    max_seq_len: int = 64
    embedding_dim: int = 128
    state_dim: int = 128
    num_layers: int = 1
    dropout: float = 0.1
    intent_mode: str = "joint"
    embedding: str = "table"
    num_codebooks: int = 8
    codebook_size: int = 16
    code_temperature: float = 1.0

    MODEL_NAME = "BiLSTM"
    POSITIVE = ("embedding_dim", "state_dim", "num_layers")

    def validate(self) -> None:
        super().validate()
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be at least 3, got {self.vocab_size}")
        if self.embedding not in ("table", "codes"):
            raise ValueError(f"embedding must be 'table' or 'codes', got {self.embedding!r}")
        if self.embedding == "codes" and (self.num_codebooks < 1 or not 2 <= self.codebook_size <= 256
                                          or self.code_temperature <= 0):
            raise ValueError(f"codes need num_codebooks >= 1, codebook_size in [2, 256] and a "
                             f"positive code_temperature, got {self.num_codebooks}, "
                             f"{self.codebook_size}, {self.code_temperature}")


@keras.utils.register_keras_serializable(package="prado_tiny")
class BiLSTMTagger(JointModel):
    """The BiLSTM joint intent and slot model.

    Args:
      config: a `BiLSTMConfig` (or its dict).
      quantize: fake-quantize weights and activations (QAT); `set_quantize` switches it later.
      **kwargs: passed to `keras.Model`.

    Example:

    >>> model = BiLSTMTagger(BiLSTMConfig(num_intents=5, num_slot_tags=7, vocab_size=50,
    ...                                   max_seq_len=16, embedding_dim=8, state_dim=8))
    >>> out = model({"piece_ids": tf.ones([2, 16, 3], tf.int32)})
    >>> out["intent"].shape, out["slots"].shape
    (TensorShape([2, 5]), TensorShape([2, 16, 7]))
    """

    CONFIG_CLASS = BiLSTMConfig

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(config, quantize, **kwargs)
        c, q = self.config, self._quantize
        if c.embedding == "codes":
            self.embedding = CodeEmbedding(c.vocab_size, c.embedding_dim, c.num_codebooks,
                                           c.codebook_size, c.code_temperature, quantize=q,
                                           name="embedding")
        else:
            self.embedding = PieceEmbedding(c.vocab_size, c.embedding_dim, quantize=q, name="embedding")
        self.embedding_quant = FakeQuant(q, name="embedding_quant")
        self.lstms = [BiLSTM(c.state_dim, quantize=q, name=f"bilstm_{i}")
                      for i in range(c.num_layers)]
        self.dropout = keras.layers.Dropout(c.dropout)
        self.pool = AttentionPooling(quantize=q, name="intent_pool")
        self.intent_head = QuantDense(c.num_intents, quantize=q, name="intent_head")
        self.slot_head = QuantDense(c.num_slot_tags, quantize=q, name="slot_head")

    def _quantized_layers(self):
        return [self.embedding, self.embedding_quant, *self.lstms, self.pool, self.intent_head, self.slot_head]

    def call(self, inputs, training=None):
        ids = tf.cast(inputs["piece_ids"], tf.int32)
        mask = piece_token_mask(inputs, self.compute_dtype)
        x = self.embedding_quant(self.embedding(ids, training=training), training=training)
        x = self.dropout(x, training=training) * mask
        for lstm in self.lstms:
            x = self.dropout(lstm(x, mask, training=training), training=training)
        return {"intent": self.intent_head(self.pool(x, mask, training=training), training=training),
                "slots": self.slot_head(x, training=training)}
