"""pNLP-Mixer: MinHash projection, linear bottleneck, MLP-Mixer blocks, joint intent/slot heads.

Follows Fusco et al., "pNLP-Mixer: an Efficient all-MLP Architecture for Language" (ACL 2023
Industry, arXiv 2202.04350). Sizes of the paper (m, w, B, layers): X-Small (1024, 0, 64, 2),
Base (1024, 1, 256, 2), X-Large (2048, 1, 512, 4); `configs/pnlp_mixer_*.flags`.

One model, two input forms (`PNLPMixer.call`):

* `{"buckets": int [B, T, H], "token_mask": int [B, T]}`: the Bloom buckets the host featurizer
  caches (`prado_tiny.data.ragged_features`); training reads these, with T the longest example
  of the batch, and the bottleneck runs as a sparse product (`BloomBottleneck`).
* `{"codepoints": int32 [B, T, P, C]}` (or `[B, T, C]`): the text itself; the MinHash
  projection runs in the graph (`MinHashProjection`), which is what the exported .tflite does.
  The token mask is derived from the codepoints.

Both give the same outputs (a test checks it). Outputs: `{"intent": [B, num_intents] logits,
"slots": [B, T, num_slot_tags] logits}`. With `intent_mode="multi_label"` the intent logits are
per atomic intent (sigmoid) instead of per joint label (softmax).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.attention_pooling import AttentionPooling
from prado_tiny.layers.bloom_bottleneck import BloomBottleneck
from prado_tiny.layers.fake_quant import FakeQuant
from prado_tiny.layers.minhash_projection import exact_int8
from prado_tiny.layers.mixer_block import MixerBlock
from prado_tiny.layers.quant_dense import QuantDense
from prado_tiny.models.base import JointModel, ModelConfig, export_model  # noqa: F401 (re-exported)


@dataclasses.dataclass
class PNLPMixerConfig(ModelConfig):
    """Every hyper-parameter of a pNLP-Mixer; saved as JSON in the model folder.

    Attributes:
      num_intents, num_slot_tags: output sizes (from the label vocabulary).
      max_seq_len: tokens per example (T); the token-mixing MLPs are this wide.
      num_hashes, ngram_size, bloom_size, window, seed: the MinHash projection (H, n, m, w).
      hidden_dim: B, the bottleneck size.
      num_layers: mixer blocks.
      token_mlp_dim, channel_mlp_dim: MLP hidden sizes (default: max_seq_len and hidden_dim).
      dropout: dropout in the mixer blocks and before the heads.
      intent_mode: `joint` (one softmax class per label, `a#b` included) or `multi_label`
        (one sigmoid per atomic intent).
    """

    num_intents: int
    num_slot_tags: int
    max_seq_len: int = 64
    num_hashes: int = 64
    ngram_size: int = 3
    bloom_size: int = 1024
    window: int = 1
    seed: int = 0
    hidden_dim: int = 256
    num_layers: int = 2
    token_mlp_dim: Optional[int] = None
    channel_mlp_dim: Optional[int] = None
    dropout: float = 0.0
    intent_mode: str = "joint"

    MODEL_NAME = "pNLP-Mixer"
    POSITIVE = ("hidden_dim", "num_layers")

    def validate(self) -> None:
        super().validate()
        self.token_mlp_dim = self.token_mlp_dim or self.max_seq_len
        self.channel_mlp_dim = self.channel_mlp_dim or self.hidden_dim


@keras.utils.register_keras_serializable(package="prado_tiny")
class PNLPMixer(JointModel):
    """The pNLP-Mixer joint intent and slot model.

    Args:
      config: a `PNLPMixerConfig` (or its dict).
      quantize: fake-quantize weights and activations (QAT); `set_quantize` switches it later.
      **kwargs: passed to `keras.Model`.

    Example:

    >>> model = PNLPMixer(PNLPMixerConfig(num_intents=5, num_slot_tags=7, max_seq_len=16,
    ...                                   bloom_size=64, hidden_dim=32))
    >>> out = model({"codepoints": tf.zeros([2, 16, 3, 8], tf.int32)})
    >>> out["intent"].shape, out["slots"].shape
    (TensorShape([2, 5]), TensorShape([2, 16, 7]))
    """

    CONFIG_CLASS = PNLPMixerConfig

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(config, quantize, **kwargs)
        c, q = self.config, self._quantize
        self.bottleneck = BloomBottleneck(c.hidden_dim, c.bloom_size, c.window, quantize=q,
                                          name="bottleneck")
        self.blocks = [MixerBlock(c.max_seq_len, c.token_mlp_dim, c.channel_mlp_dim, c.dropout,
                                  quantize=q, name=f"mixer_{i}") for i in range(c.num_layers)]
        self.masked_quant = FakeQuant(q, name="masked_quant")
        self.pool = AttentionPooling(quantize=q, name="intent_pool")
        self.head_dropout = keras.layers.Dropout(c.dropout)
        self.intent_head = QuantDense(c.num_intents, quantize=q, name="intent_head")
        self.slot_head = QuantDense(c.num_slot_tags, quantize=q, name="slot_head")
        self._projection = None

    def _quantized_layers(self):
        return [self.bottleneck, *self.blocks, self.masked_quant, self.pool, self.intent_head,
                self.slot_head]

    @property
    def projection(self):
        """The in-graph MinHash projection (created on first use: training does not need it)."""
        if self._projection is None:
            from prado_tiny.layers.minhash_projection import MinHashProjection
            c = self.config
            self._projection = MinHashProjection(c.num_hashes, c.ngram_size, c.bloom_size, c.window,
                                                 c.seed, name="projection")
        return self._projection

    def call(self, inputs, training=None):
        if "codepoints" in inputs:
            codepoints = tf.cast(inputs["codepoints"], tf.int32)
            features = self.projection(codepoints)
            axes = list(range(2, codepoints.shape.rank))
            # 0/1 per token in integer ops, then exact on the int8 grid (no float tensor).
            mask_int = tf.minimum(tf.reduce_max(codepoints, axis=axes), 1)
            mask = exact_int8(mask_int)[..., None]
            x = self.bottleneck(features, training=training)
        else:
            token_mask = inputs["token_mask"]
            mask = tf.cast(token_mask, self.compute_dtype)[..., None]
            x = self.bottleneck((inputs["buckets"], token_mask), training=training)
        x = self.masked_quant(x * mask, training=training)
        for block in self.blocks:
            x = block(x, mask, training=training)
        pooled = self.head_dropout(self.pool(x, mask, training=training), training=training)
        x = self.head_dropout(x, training=training)
        return {"intent": self.intent_head(pooled, training=training),
                "slots": self.slot_head(x, training=training)}
