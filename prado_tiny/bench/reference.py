"""An mBERT-shaped reference encoder with random weights, exported int8 by prado-export's converter.

The pNLP-Mixer paper sizes its models against mBERT; this builds an encoder of the same shape
(12 layers, hidden 768, 12 heads, intermediate 3072, vocabulary 119,547, learned position
embeddings, post-LayerNorm, GELU) at the toolkit's sequence length, with an intent head on the
first token and a slot head on every token, and converts it with `prado_tiny.export.tflite.convert`
(TFLITE_BUILTINS_INT8, representative dataset) so both sides of a ratio come from one converter.
Weights are random: only size and speed are compared, never accuracy.

The conversion takes minutes and about 180 MB on disk, so the .tflite is cached under a name that
spells out the configuration (`reference_tflite`), and it runs in a subprocess
(`python -m prado_tiny.bench.reference`): a converter crash must not take the caller down
(../shared/STACK.md).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import time
from typing import Optional

MBERT = dict(num_layers=12, hidden=768, heads=12, intermediate=3072, vocab_size=119547)


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """The encoder's shape.

    Args:
      num_layers, hidden, heads, intermediate, vocab_size: transformer sizes (mBERT's by default).
      seq_len: input tokens (the toolkit exports 64).
      num_intents, num_slot_tags: head sizes (MTOP-like; they barely change the size).
      seed: weight initialisation seed.
    """

    num_layers: int = MBERT["num_layers"]
    hidden: int = MBERT["hidden"]
    heads: int = MBERT["heads"]
    intermediate: int = MBERT["intermediate"]
    vocab_size: int = MBERT["vocab_size"]
    seq_len: int = 64
    num_intents: int = 117
    num_slot_tags: int = 151
    seed: int = 0

    def __post_init__(self):
        # Checked here, not in the converter's subprocess: a bad shape fails at once.
        if self.hidden % self.heads:
            raise ValueError(f"hidden={self.hidden} is not divisible by heads={self.heads}: "
                             f"choose sizes where it is")
        small = [f.name for f in dataclasses.fields(self) if getattr(self, f.name) < 1 and f.name != "seed"]
        if small:
            raise ValueError(f"reference sizes must be at least 1: {', '.join(small)}")

    @property
    def file_name(self) -> str:
        return (f"mbert_shaped_L{self.num_layers}_H{self.hidden}_A{self.heads}_I{self.intermediate}"
                f"_V{self.vocab_size}_S{self.seq_len}_i{self.num_intents}_t{self.num_slot_tags}"
                f"_seed{self.seed}.tflite")


def build_encoder(config: ReferenceConfig):
    """The Keras (tf_keras) model: int32 ids `[1, seq_len]` -> (intent logits, slot logits)."""
    import numpy as np
    import tensorflow as tf
    import tf_keras as keras

    ids = keras.Input(shape=(config.seq_len,), batch_size=1, dtype=tf.int32, name="input_ids")
    x = keras.layers.Embedding(config.vocab_size, config.hidden, name="word_embeddings")(ids)
    positions = keras.layers.Embedding(config.seq_len, config.hidden, name="position_embeddings")(
        tf.range(config.seq_len)[None])
    x = keras.layers.Add()([x, positions])
    x = keras.layers.LayerNormalization(epsilon=1e-12, name="embeddings_ln")(x)
    for i in range(config.num_layers):
        att = keras.layers.MultiHeadAttention(config.heads, config.hidden // config.heads,
                                              name=f"layer{i}_attention")(x, x)
        x = keras.layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_att_ln")(
            keras.layers.Add()([x, att]))
        h = keras.layers.Dense(config.intermediate, activation="gelu", name=f"layer{i}_intermediate")(x)
        h = keras.layers.Dense(config.hidden, name=f"layer{i}_output")(h)
        x = keras.layers.LayerNormalization(epsilon=1e-12, name=f"layer{i}_out_ln")(
            keras.layers.Add()([x, h]))
    pooled = keras.layers.Dense(config.hidden, activation="tanh", name="pooler")(x[:, 0])
    intent = keras.layers.Dense(config.num_intents, name="intent")(pooled)
    slots = keras.layers.Dense(config.num_slot_tags, name="slots")(x)
    model = keras.Model(ids, [intent, slots], name="mbert_shaped")
    # Every matrix drawn afresh with BERT's N(0, 0.02): Keras initialisers cloned with one seed
    # (MultiHeadAttention's query/key/value) give identical matrices, which the converter stores
    # once, and the file would come out smaller than mBERT's.
    rng = np.random.default_rng(config.seed)
    model.set_weights([np.clip(rng.normal(0.0, 0.02, w.shape), -0.04, 0.04).astype(w.dtype)
                       if w.ndim >= 2 else w for w in model.get_weights()])
    return model


def convert_reference(config: ReferenceConfig, output: str, calibration: int = 8) -> None:
    """Builds and converts the encoder to `output` (in this process: call it in a subprocess).

    Args:
      config: the encoder's shape.
      output: the .tflite to write (written to a temporary name, then renamed).
      calibration: representative samples (random ids; the weights are random too).
    """
    import numpy as np

    from prado_tiny.export.tflite import convert

    model = build_encoder(config)
    rng = np.random.default_rng(config.seed)
    samples = [rng.integers(0, config.vocab_size, size=(1, config.seq_len)).astype(np.int32)
               for _ in range(calibration)]
    data = convert(model, samples)
    tmp = output + f".tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, output)


def default_cache_dir() -> str:
    """`$PRADO_CACHE_DIR/reference`, else `~/.cache/prado_tiny/reference`."""
    base = os.environ.get("PRADO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache",
                                                             "prado_tiny")
    return os.path.join(base, "reference")


def reference_tflite(config: Optional[ReferenceConfig] = None, cache_dir: Optional[str] = None,
                     timeout: float = 3600.0, log=print) -> str:
    """The cached reference .tflite of `config`, converted first if it is not there.

    Args:
      config: the encoder's shape (mBERT's by default).
      cache_dir: where converted references are kept (`default_cache_dir()` by default).
      timeout: seconds the conversion may take.
      log: where progress lines go.

    Returns:
      The .tflite path.

    Raises:
      RuntimeError: the conversion failed (its output is in the message).
    """
    config = config or ReferenceConfig()
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    path = os.path.join(cache_dir, config.file_name)
    if os.path.isfile(path):
        return path
    log(f"prado-bench: converting the reference {config.file_name} (cached in {cache_dir}; "
        f"minutes for the full mBERT shape)")
    t0 = time.time()
    args = [sys.executable, "-m", "prado_tiny.bench.reference", "--output", path]
    for f in dataclasses.fields(config):
        args += [f"--{f.name}", str(getattr(config, f.name))]
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    r = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout)
    if r.returncode != 0 or not os.path.isfile(path):
        raise RuntimeError(f"converting the reference {config.file_name} failed (exit "
                           f"{r.returncode}); free memory/disk in {cache_dir} and retry:\n"
                           f"{(r.stderr or r.stdout)[-3000:]}")
    log(f"prado-bench: reference written in {time.time() - t0:.0f} s: {path} "
        f"({os.path.getsize(path):,} bytes)")
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Convert the mBERT-shaped reference to int8 .tflite.")
    ap.add_argument("--output", required=True)
    for f in dataclasses.fields(ReferenceConfig):
        ap.add_argument(f"--{f.name}", type=int, default=f.default)
    args = vars(ap.parse_args(argv))
    output = args.pop("output")
    convert_reference(ReferenceConfig(**args), output)


if __name__ == "__main__":
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    main()
