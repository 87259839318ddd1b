"""What every joint intent/slot model of the toolkit shares: its config dataclass behaviour, its
Keras model plumbing (config from a dict, `quantize`, `get_config`/`from_config`), the
functional model that conversion reads (`export_model`) and the token mask of the embedding
models (`piece_token_mask`).

A model module defines `XConfig(ModelConfig)` as a dataclass with `MODEL_NAME` and
`POSITIVE` (fields that must be at least 1), and `X(JointModel)` with `CONFIG_CLASS = XConfig`;
the model's `__init__` calls `super().__init__(config, quantize, **kwargs)` and then builds its
layers from `self.config`.
"""
from __future__ import annotations

import dataclasses
import json

import tf_keras as keras

from prado_tiny.layers.fake_quant import QuantizeSwitch

INTENT_MODES = ("joint", "multi_label")


class ModelConfig:
    """Mixin for a model's config dataclass: validation, JSON and construction from a dict."""

    MODEL_NAME = "model"
    POSITIVE: tuple = ()

    def validate(self) -> None:
        """Checks `intent_mode` and the `POSITIVE` fields; subclasses add their own checks."""
        if self.intent_mode not in INTENT_MODES:
            raise ValueError(f"intent_mode must be one of {INTENT_MODES}, got {self.intent_mode!r}")
        for name in ("num_intents", "num_slot_tags", "max_seq_len", *self.POSITIVE):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def __post_init__(self):
        self.validate()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict):
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown {cls.MODEL_NAME} config keys: {sorted(unknown)}")
        return cls(**d)


def piece_token_mask(inputs, dtype):
    """The `[B, T, 1]` token mask of an embedding model's input: `token_mask` when given
    (training batches), else derived from the piece ids (a token whose first piece id is 0 is
    padding), pinned to the int8 grid so that the .tflite holds no float op."""
    import tensorflow as tf

    from prado_tiny.layers.minhash_projection import exact_int8
    if "token_mask" in inputs:
        return tf.cast(inputs["token_mask"], dtype)[..., None]
    return exact_int8(tf.minimum(tf.cast(inputs["piece_ids"], tf.int32)[..., 0], 1))[..., None]


class JointModel(QuantizeSwitch, keras.Model):
    """Base of the joint models: holds `config` (a `CONFIG_CLASS`, also given as a dict) and the
    QAT switch; serializes as `{"config", "quantize", "name"}`."""

    CONFIG_CLASS = None

    def __init__(self, config, quantize: bool = False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(config, dict):
            config = self.CONFIG_CLASS.from_dict(config)
        self.config = config
        self._quantize = bool(quantize)

    def get_config(self):
        return {"config": dataclasses.asdict(self.config), "quantize": self._quantize,
                "name": self.name}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


def export_model(model: keras.Model, input_shape, batch_size: int = 1,
                 input_name: str = "codepoints") -> keras.Model:
    """A functional model for conversion: int32 `input_name` `[batch_size, *input_shape]` ->
    `(intent logits, slot logits)`, sharing `model`'s weights. Every joint model of the toolkit
    exports this way (`codepoints` for pNLP-Mixer and pQRNN, `piece_ids` for embedding models)."""
    inp = keras.Input(tuple(input_shape), batch_size=batch_size, dtype="int32", name=input_name)
    out = model({input_name: inp}, training=False)
    intent = keras.layers.Activation("linear", name="intent")(out["intent"])
    slots = keras.layers.Activation("linear", name="slots")(out["slots"])
    return keras.Model(inp, [intent, slots], name=f"{model.name}_export")
