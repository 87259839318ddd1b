"""The transformer baseline: WordPiece embeddings, learned positions, pre-LN transformer layers,
the shared joint heads.

The transformer of pQRNN's paper (Kaliamoorthi et al., arXiv 2101.08890: "with the same number of
parameters, pQRNNs outperform transformer baselines"), trained from scratch by the same trainer
on the same data; `configs/transformer.flags` sizes it to `configs/pqrnn.flags`'s parameter count.
A token is the sum of its WordPiece pieces' embeddings (`PieceEmbedding`), so slot tags stay
aligned with tokens.

Input: `{"piece_ids": int32 [B, T, P]}` (`TextEncoder.encode_piece_ids`), plus `token_mask` in
training (derived from the ids otherwise). Quantization-aware (`--qat_epochs`) like the other
models; `prado-export` makes it int8 with builtin ops.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.attention_pooling import AttentionPooling
from prado_tiny.layers.fake_quant import FakeQuant
from prado_tiny.layers.piece_embedding import PieceEmbedding
from prado_tiny.layers.quant_dense import QuantDense
from prado_tiny.layers.transformer_block import TransformerBlock
from prado_tiny.models.base import JointModel, ModelConfig, piece_token_mask


@dataclasses.dataclass
class TransformerConfig(ModelConfig):
    """Every hyper-parameter of the transformer baseline; saved as JSON in the model folder.

    Attributes:
      num_intents, num_slot_tags: output sizes (from the label vocabulary).
      vocab_size: embedding rows (WordPiece vocabulary + 2: padding and out-of-vocabulary).
      max_seq_len: tokens per example (rows of the position table).
      embedding_dim: the model width (embeddings and every layer).
      num_heads: attention heads.
      ff_dim: feed-forward hidden size.
      num_layers: transformer layers.
      dropout: dropout on embeddings, attention and feed-forward outputs.
      intent_mode: `joint` or `multi_label`.
    """

    num_intents: int
    num_slot_tags: int
    vocab_size: int
    max_seq_len: int = 64
    embedding_dim: int = 128
    num_heads: int = 4
    ff_dim: int = 512
    num_layers: int = 2
    dropout: float = 0.1
    intent_mode: str = "joint"

    MODEL_NAME = "transformer"
    POSITIVE = ("embedding_dim", "num_heads", "ff_dim", "num_layers")

    def validate(self) -> None:
        super().validate()
        if self.vocab_size < 3:
            raise ValueError(f"vocab_size must be at least 3, got {self.vocab_size}")
        if self.embedding_dim % self.num_heads:
            raise ValueError(f"embedding_dim={self.embedding_dim} is not divisible by "
                             f"num_heads={self.num_heads}")


@keras.utils.register_keras_serializable(package="prado_tiny")
class TransformerTagger(JointModel):
    """The transformer joint intent and slot model.

    Args:
      config: a `TransformerConfig` (or its dict).
      quantize: fake-quantize weights and activations (QAT); `set_quantize` switches it later.
      **kwargs: passed to `keras.Model`.

    Example:

    >>> model = TransformerTagger(TransformerConfig(num_intents=5, num_slot_tags=7, vocab_size=50,
    ...                                             max_seq_len=16, embedding_dim=8, ff_dim=16))
    >>> out = model({"piece_ids": tf.ones([2, 16, 3], tf.int32)})
    >>> out["intent"].shape, out["slots"].shape
    (TensorShape([2, 5]), TensorShape([2, 16, 7]))
    """

    CONFIG_CLASS = TransformerConfig

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(config, quantize, **kwargs)
        c, q = self.config, self._quantize
        self.embedding = PieceEmbedding(c.vocab_size, c.embedding_dim, quantize=q, name="embedding")
        self.positions = self.add_weight(
            "positions", shape=(c.max_seq_len, c.embedding_dim),
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.embedding_quant = FakeQuant(q, name="embedding_quant")
        self.blocks = [TransformerBlock(c.num_heads, c.ff_dim, c.dropout, quantize=q,
                                        name=f"transformer_{i}") for i in range(c.num_layers)]
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.final_quant = FakeQuant(q, name="final_quant")
        self.dropout = keras.layers.Dropout(c.dropout)
        self.pool = AttentionPooling(quantize=q, name="intent_pool")
        self.intent_head = QuantDense(c.num_intents, quantize=q, name="intent_head")
        self.slot_head = QuantDense(c.num_slot_tags, quantize=q, name="slot_head")
        self.pad_pattern = tf.constant([1.0 if i % 2 == 0 else -1.0
                                        for i in range(c.embedding_dim)])
        self._scale = float(c.embedding_dim) ** 0.5

    def _quantized_layers(self):
        return [self.embedding, self.embedding_quant, *self.blocks, self.final_quant, self.pool,
                self.intent_head, self.slot_head]

    def call(self, inputs, training=None):
        ids = tf.cast(inputs["piece_ids"], tf.int32)
        mask = piece_token_mask(inputs, self.compute_dtype)
        t = ids.shape[1]
        positions = self.positions if t == self.config.max_seq_len else self.positions[:tf.shape(ids)[1]]
        # Embeddings times sqrt(width), as Vaswani et al.: LayerNorm's int8 ranges are shared with
        # the +-1 rows that padding enters it as, and real rows of variance 1e-3 (the table's
        # uniform +-0.05 start) were lost in them: the int8 model was 12.8 exact-match points
        # behind the Keras one (demo data, 2026-12-02). A unit-variance table instead learned
        # slower (67.4 against 82.8 after 10 demo epochs).
        x = self.embedding(ids, training=training) * self._scale + positions
        x = self.embedding_quant(x, training=training)
        x = self.dropout(x, training=training) * mask
        for block in self.blocks:
            x = block(x, mask, training=training)
        x = self.final_quant(self.final_norm(x + (1.0 - mask) * self.pad_pattern),
                             training=training) * mask
        pooled = self.dropout(self.pool(x, mask, training=training), training=training)
        return {"intent": self.intent_head(pooled, training=training),
                "slots": self.slot_head(self.dropout(x, training=training), training=training)}
