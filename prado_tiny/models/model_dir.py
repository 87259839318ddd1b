"""The model folder: what `prado-train` writes and `prado-export` / `prado-eval` read.

Layout of `--model_dir`:

    model.json            model type, its config, intent mode, input form (written first)
    label_vocab.json      the label vocabulary (LabelVocab; intent/slot models)
    output_vocab.json     the output vocabulary (OutputVocab; seq2seq models: pqrnn_matt)
    text_encoder/         TextEncoder config and WordPiece vocabulary
    checkpoints/          the latest training state (weights, optimizer, epoch, step): resume
    best/                 the weights of the best development epoch: export and evaluation
    logs/                 TensorBoard event files
    history.json          per-epoch metrics, throughput, the best epoch
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, Optional, Tuple

from prado_tiny.data.text_encoder import TextEncoder
from prado_tiny.data.vocab import LabelVocab

MODEL_FILE = "model.json"
OUTPUT_VOCAB_FILE = "output_vocab.json"
FORMAT = "prado-tiny-model-dir"
#: Model types that generate a decoupled parse (ontology + pointer ids) instead of intent and
#: slot logits: their folders hold an OutputVocab, `load` returns it in place of the LabelVocab.
SEQ2SEQ_TYPES = ("pqrnn_matt", "lstm_seq2seq")
#: Model types that read ternary projection features of whole tokens.
TERNARY_TYPES = ("pqrnn", "pqrnn_matt")


class ModelDirError(ValueError):
    """A model folder that is missing, incomplete, or holds another model."""


def model_types() -> Dict[str, Any]:
    """Model type name -> (config class, model class); imported lazily (TensorFlow)."""
    from prado_tiny.models.pnlp_mixer import PNLPMixer, PNLPMixerConfig
    from prado_tiny.models.bilstm import BiLSTMConfig, BiLSTMTagger
    from prado_tiny.models.lstm_seq2seq import LSTMSeq2Seq, LSTMSeq2SeqConfig
    from prado_tiny.models.pqrnn import PQRNN, PQRNNConfig
    from prado_tiny.models.pqrnn_matt import PQRNNMAtt, PQRNNMAttConfig
    from prado_tiny.models.transformer import TransformerConfig, TransformerTagger
    return {"pnlp_mixer": (PNLPMixerConfig, PNLPMixer), "pqrnn": (PQRNNConfig, PQRNN),
            "bilstm": (BiLSTMConfig, BiLSTMTagger), "transformer": (TransformerConfig, TransformerTagger),
            "pqrnn_matt": (PQRNNMAttConfig, PQRNNMAtt),
            "lstm_seq2seq": (LSTMSeq2SeqConfig, LSTMSeq2Seq)}


def is_seq2seq(spec: Dict[str, Any]) -> bool:
    """True for a model that generates parses (pqrnn_matt, lstm_seq2seq)."""
    return spec.get("model_type") in SEQ2SEQ_TYPES


def save_output_vocab(model_dir: str, vocab) -> str:
    """Writes a seq2seq model's `OutputVocab` (`to_dict`) to `model_dir/output_vocab.json`."""
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, OUTPUT_VOCAB_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(vocab.to_dict(), f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
    return path


def load_output_vocab(model_dir: str):
    """The `OutputVocab` of a seq2seq model folder."""
    from prado_tiny.data.seq2seq_targets import OutputVocab
    path = os.path.join(model_dir, OUTPUT_VOCAB_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return OutputVocab.from_dict(json.load(f))
    except FileNotFoundError:
        raise ModelDirError(f"{model_dir}: no {OUTPUT_VOCAB_FILE}; the folder of a seq2seq model "
                            f"is incomplete") from None
    except (OSError, json.JSONDecodeError, ValueError, KeyError) as e:
        raise ModelDirError(f"{path}: cannot read the output vocabulary: {e}") from e


def input_name(spec: Dict[str, Any]) -> str:
    """The name of the exported model's input: `piece_ids` for embedding models, else
    `codepoints` (the projection runs in the graph)."""
    return "piece_ids" if spec["input"] == "piece_ids" else "codepoints"


def feature_key(spec: Dict[str, Any]) -> str:
    """The input name of the cached training features."""
    if spec["input"] == "piece_ids":
        return "piece_ids"
    return "projection" if spec["model_type"] in TERNARY_TYPES else "buckets"


def write_spec(model_dir: str, spec: Dict[str, Any]) -> str:
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, MODEL_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(dict(spec, format=FORMAT), f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return path


def read_spec(model_dir: str) -> Optional[Dict[str, Any]]:
    """The spec in `model_dir`, or None when the folder has none yet."""
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ModelDirError(f"{path}: cannot read the model spec: {e}") from e
    if spec.get("format") != FORMAT:
        raise ModelDirError(f"{path}: not a prado-tiny model spec")
    return spec


def with_config_defaults(spec: Dict[str, Any]) -> Dict[str, Any]:
    """`spec` with every config key it predates filled in with its config class's default: an
    option added later (e.g. pqrnn_matt's `int8_internals`) defaults to the layout older folders
    were trained with, so a folder is compared by what it holds, not by a missing key."""
    import dataclasses
    types = model_types()
    if spec.get("model_type") not in types:
        return spec
    config = dict(spec.get("config") or {})
    for f in dataclasses.fields(types[spec["model_type"]][0]):
        if f.name not in config and f.default is not dataclasses.MISSING:
            config[f.name] = f.default
    return dict(spec, config=config)


def embedding_kind(spec: Dict[str, Any]) -> str:
    """"table" or "codes" for a BiLSTM spec (its word-piece embedding), else a description of a
    model without an embedding table; from the spec alone (no TensorFlow)."""
    if spec.get("model_type") != "bilstm":
        return f"{spec.get('model_type')} (no embedding table)"
    return (spec.get("config") or {}).get("embedding", "table")


def spec_differences(old: Dict[str, Any], new: Dict[str, Any], prefix: str = "") -> list:
    """Keys whose values differ between two specs (nested keys joined by dots)."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += spec_differences(a, b, prefix + key + ".")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def build_model(spec: Dict[str, Any], quantize: Optional[bool] = None):
    types = model_types()
    if spec["model_type"] not in types:
        raise ModelDirError(f"unknown model type {spec['model_type']!r} (known: {sorted(types)})")
    config_cls, model_cls = types[spec["model_type"]]
    q = spec.get("qat", False) if quantize is None else quantize
    return model_cls(config_cls.from_dict(spec["config"]), quantize=q)


def load(model_dir: str, weights: str = "best", quantize: Optional[bool] = None
         ) -> Tuple[Any, Dict[str, Any], LabelVocab, TextEncoder]:
    """-> (model with weights restored, spec, label vocabulary, text encoder).

    For a seq2seq model (`is_seq2seq(spec)`, pqrnn_matt) the third item is its `OutputVocab`.

    `weights`: `best` (the best development epoch; falls back to the latest checkpoint when
    training never evaluated) or `latest`. `quantize`: as `build_model` (None: fake quantization
    on for a QAT model; False: its weights in float).
    """
    import tensorflow as tf

    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: model folder not found")
    spec = read_spec(model_dir)
    if spec is None:
        raise ModelDirError(f"{model_dir}: no {MODEL_FILE}; is this a prado-train --model_dir?")
    vocab = load_output_vocab(model_dir) if is_seq2seq(spec) else LabelVocab.load(model_dir)
    encoder = TextEncoder.load(os.path.join(model_dir, "text_encoder"))
    model = build_model(spec, quantize)
    path = None
    if weights == "best" and os.path.exists(os.path.join(model_dir, "best", "ckpt.index")):
        path = os.path.join(model_dir, "best", "ckpt")
    if path is None:
        path = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if path is None:
        raise ModelDirError(f"{model_dir}: no checkpoint yet (train first)")
    # Build the variables, then restore (a model-only checkpoint; optimizer state is skipped).
    dummy_input(model, spec)
    tf.train.Checkpoint(model=model).restore(path).expect_partial()
    return model, spec, vocab, encoder


def featurizer(spec: Dict[str, Any]):
    """The host featurizer of the model `spec` describes (its projection settings): MinHash
    buckets for pNLP-Mixer, ternary features for pQRNN."""
    c = spec["config"]
    if spec["input"] == "piece_ids":
        return None  # the ids are the features
    if spec["model_type"] in TERNARY_TYPES:
        from prado_tiny.layers.ternary_projection import TernaryFeaturizer
        return TernaryFeaturizer(c["num_features"], c["seed"])
    from prado_tiny.layers.minhash_projection import MinHashFeaturizer
    return MinHashFeaturizer(c["num_hashes"], c["ngram_size"], c["bloom_size"], c["window"], c["seed"])


def featurize(examples, spec: Dict[str, Any], encoder: TextEncoder, vocab: LabelVocab, host=None,
              skip_unencodable: bool = False):
    """Examples -> the TokenFeatureSet the model reads (cached features per token).

    `host`: a featurizer from `featurizer(spec)` to reuse (its cache carries over).

    A seq2seq model (`vocab` is then its OutputVocab) gets a `Seq2SeqFeatureSet`: the ternary
    features plus decoder inputs and targets (`token_features.featurize_seq2seq`); examples whose
    parse cannot be encoded are left out with `skip_unencodable` (training), else kept without
    targets (evaluation), and counted by reason either way (`skipped`)."""
    import numpy as np

    from prado_tiny.data.token_features import featurize as featurize_tokens
    host = host or featurizer(spec)
    if is_seq2seq(spec):
        from prado_tiny.data.token_features import featurize_seq2seq
        c = spec["config"]
        if spec["input"] == "piece_ids":  # the LSTM baseline looks its pieces up
            return featurize_seq2seq(examples, encoder, lambda ids: (ids, None), vocab,
                                     c["max_seq_len"], c["max_target_len"], dtype=np.int32,
                                     feature_key="piece_ids", encode=encoder.encode_piece_ids_batch,
                                     skip_unencodable=skip_unencodable)
        return featurize_seq2seq(examples, encoder, lambda cp: (host.features(cp, np.int8), None),
                                 vocab, c["max_seq_len"], c["max_target_len"],
                                 skip_unencodable=skip_unencodable)
    common = dict(max_seq_len=spec["config"]["max_seq_len"], intent_mode=spec["intent_mode"],
                  subwords=spec["input"] == "subwords")
    if spec["input"] == "piece_ids":
        return featurize_tokens(examples, encoder, lambda ids: (ids, None), vocab, dtype=np.int32,
                                feature_key="piece_ids", encode=encoder.encode_piece_ids_batch,
                                **common)
    if spec["model_type"] == "pqrnn":
        # Ternary values in {-1, 0, 1}: one byte each.
        return featurize_tokens(examples, encoder, lambda cp: (host.features(cp, np.int8), None),
                                vocab, dtype=np.int8, feature_key="projection", **common)
    return featurize_tokens(examples, encoder, host.buckets, vocab, **common)


def distortion_augmenter(spec: Dict[str, Any], encoder: TextEncoder, probability: float,
                         host=None):
    """-> `augment(features, examples, rng) -> features` for the Trainer: the batch's tokens
    distorted (`TextDistorter`: character deletions, insertions, swaps with `probability` per
    character), encoded and projected again on the host. Token counts never change, so the
    labels stay aligned; the cached features of the clean text are not touched."""
    import numpy as np

    from prado_tiny.data.distortion import TextDistorter
    distorter = TextDistorter(probability)
    host = host or featurizer(spec)
    pqrnn = spec["model_type"] in TERNARY_TYPES
    key = feature_key(spec)
    form = spec["input"]
    max_len = spec["config"]["max_seq_len"]

    def augment(features, examples, rng):
        t = features[key].shape[1]
        noisy = distorter.distort_batch([list(ex.tokens[:max_len]) for ex in examples], rng)
        if form == "piece_ids":
            values = encoder.encode_piece_ids_batch(noisy)[:, :t]
        else:
            cp = (encoder.encode_subwords_batch(noisy) if form == "subwords"
                  else encoder.encode_tokens_batch(noisy))[:, :t]
            values = host.features(cp, np.int8) if pqrnn else host.buckets(cp)[0]
        real = features["token_mask"].astype(bool)
        out = features[key].copy()
        out[real] = values[real].astype(out.dtype)
        return dict(features, **{key: out})

    return augment


def dummy_input(model, spec: Dict[str, Any]):
    """Runs the model once on a one-token batch so that every variable exists."""
    import numpy as np
    c = spec["config"]
    mask = np.ones((1, 1), np.int32)
    if is_seq2seq(spec):
        return model.ensure_built()
    if spec["input"] == "piece_ids":
        return model({"piece_ids": np.ones((1, 1, 2), np.int32), "token_mask": mask},
                     training=False)
    if spec["model_type"] == "pqrnn":
        return model({"projection": np.zeros((1, 1, c["num_features"]), np.int8),
                      "token_mask": mask}, training=False)
    return model({"buckets": np.zeros((1, 1, c["num_hashes"]), np.int32), "token_mask": mask},
                 training=False)
