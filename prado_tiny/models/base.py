"""What every joint intent/slot model of the toolkit shares: its config dataclass behaviour and
its Keras model plumbing (config from a dict, `quantize`, `get_config`/`from_config`).

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
