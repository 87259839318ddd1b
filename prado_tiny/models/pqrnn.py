"""pQRNN: ternary projection, dense bottleneck, bidirectional QRNN stack, joint intent/slot heads.

Follows Kaliamoorthi et al., "Distilling Large Language Models into Tiny and Effective Students
using pQRNN" (arXiv 2101.08890) and the reference encoder in tensorflow/models
research/seq_flow_lite: each token (lower-cased, split on spaces) becomes F ternary features from
its hash (`TernaryProjection`), a dense bottleneck maps them to B features, N bidirectional QRNN
layers (zoneout decaying per layer as p^(layer+1)) run over the tokens, and the heads of the
mixer follow: per-token slot tagging, intent by attention pooling.

Unlike the reference, the whole model, projection included, converts to an int8 .tflite of
builtin ops (no custom op, no Flex), with the recurrence unrolled over `max_seq_len`.

One model, two input forms (`PQRNN.call`):

* `{"projection": int8/float [B, T, F], "token_mask": int [B, T]}`: the ternary features the
  host featurizer caches (`TernaryFeaturizer`); training reads these, T the longest example.
* `{"codepoints": int32 [B, T, C]}`: the text itself; the projection runs in the graph, which is
  what the exported .tflite does. The token mask is derived from the codepoints.

Both give the same outputs (a test checks it). Outputs: `{"intent": [B, num_intents] logits,
"slots": [B, T, num_slot_tags] logits}`.
"""
from __future__ import annotations

import dataclasses

import tensorflow as tf
import tf_keras as keras

from prado_tiny.layers.attention_pooling import AttentionPooling
from prado_tiny.layers.fake_quant import FakeQuant
from prado_tiny.layers.minhash_projection import exact_int8
from prado_tiny.layers.qrnn import QRNN
from prado_tiny.layers.quant_dense import QuantDense
from prado_tiny.models.base import JointModel, ModelConfig


def ternary_inputs(inputs, layer):
    """-> (ternary features [B, T, F], token mask [B, T, 1]) from either input form of a pQRNN
    encoder: cached `projection` + `token_mask`, or `codepoints` projected in the graph by
    `layer.projection` (what the .tflite does). Shared by `PQRNN` and pQRNN-MAtt's encoder."""
    if "codepoints" in inputs:
        codepoints = tf.cast(inputs["codepoints"], tf.int32)
        if codepoints.shape.rank != 3:
            raise ValueError(f"pQRNN reads whole tokens: codepoints [batch, tokens, chars], "
                             f"got shape {codepoints.shape}")
        features = layer.projection(codepoints)
        # 0/1 per token in integer ops, then exact on the int8 grid (no float tensor).
        mask = exact_int8(tf.minimum(tf.reduce_max(codepoints, axis=2), 1))[..., None]
    else:
        features = tf.cast(inputs["projection"], layer.compute_dtype)
        mask = tf.cast(inputs["token_mask"], layer.compute_dtype)[..., None]
    return features, mask


@dataclasses.dataclass
class PQRNNConfig(ModelConfig):
    """Every hyper-parameter of a pQRNN; saved as JSON in the model folder.

    Attributes:
      num_intents, num_slot_tags: output sizes (from the label vocabulary).
      max_seq_len: tokens per example in the exported model (the unrolled length).
      num_features, seed: the ternary projection (F features per token; the hash seed).
      bottleneck_dim: B, the dense bottleneck after the projection.
      state_dim: QRNN state size per direction (layer outputs have 2 * state_dim features).
      num_layers: bidirectional QRNN layers.
      kernel_width: width of the QRNN gate convolution.
      zoneout: zoneout probability p of the first layer; layer i uses p^(i+1).
      dropout: dropout between QRNN layers and before the heads.
      intent_mode: `joint` or `multi_label` (as for the mixer).
    """

    num_intents: int
    num_slot_tags: int
    max_seq_len: int = 64
    num_features: int = 512
    seed: int = 0
    bottleneck_dim: int = 256
    state_dim: int = 128
    num_layers: int = 2
    kernel_width: int = 3
    zoneout: float = 0.0
    dropout: float = 0.0
    intent_mode: str = "joint"

    MODEL_NAME = "pQRNN"
    POSITIVE = ("num_features", "bottleneck_dim", "state_dim", "num_layers", "kernel_width")

    def validate(self) -> None:
        super().validate()
        if not 0.0 <= self.zoneout < 1.0:
            raise ValueError(f"zoneout must be in [0, 1), got {self.zoneout}")


@keras.utils.register_keras_serializable(package="prado_tiny")
class PQRNN(JointModel):
    """The pQRNN joint intent and slot model.

    Args:
      config: a `PQRNNConfig` (or its dict).
      quantize: fake-quantize weights and activations (QAT); `set_quantize` switches it later.
      **kwargs: passed to `keras.Model`.

    Example:

    >>> model = PQRNN(PQRNNConfig(num_intents=5, num_slot_tags=7, max_seq_len=16,
    ...                           num_features=64, bottleneck_dim=32, state_dim=16))
    >>> out = model({"codepoints": tf.zeros([2, 16, 8], tf.int32)})
    >>> out["intent"].shape, out["slots"].shape
    (TensorShape([2, 5]), TensorShape([2, 16, 7]))
    """

    CONFIG_CLASS = PQRNNConfig

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(config, quantize, **kwargs)
        c, q = self.config, self._quantize
        self.bottleneck = QuantDense(c.bottleneck_dim, activation="relu", quantize=q,
                                     name="bottleneck")
        self.masked_quant = FakeQuant(q, name="masked_quant")
        self.qrnn = [QRNN(c.state_dim, c.kernel_width, c.zoneout ** (i + 1), quantize=q,
                          name=f"qrnn_{i}") for i in range(c.num_layers)]
        self.dropout = keras.layers.Dropout(c.dropout)
        self.pool = AttentionPooling(quantize=q, name="intent_pool")
        self.intent_head = QuantDense(c.num_intents, quantize=q, name="intent_head")
        self.slot_head = QuantDense(c.num_slot_tags, quantize=q, name="slot_head")
        self._projection = None

    def _quantized_layers(self):
        return [self.bottleneck, self.masked_quant, *self.qrnn, self.pool, self.intent_head,
                self.slot_head]

    @property
    def projection(self):
        """The in-graph ternary projection (created on first use: training does not need it)."""
        if self._projection is None:
            from prado_tiny.layers.ternary_projection import TernaryProjection
            self._projection = TernaryProjection(self.config.num_features, self.config.seed,
                                                 name="projection")
        return self._projection

    def call(self, inputs, training=None):
        features, mask = ternary_inputs(inputs, self)
        x = self.masked_quant(self.bottleneck(features, training=training) * mask,
                              training=training)
        for layer in self.qrnn:
            x = self.dropout(layer(x, mask, training=training), training=training)
        pooled = self.pool(x, mask, training=training)
        return {"intent": self.intent_head(pooled, training=training),
                "slots": self.slot_head(x, training=training)}
