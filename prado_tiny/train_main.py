"""prado-train: trains a pNLP-Mixer or a pQRNN on a dataset, with QAT, checkpoints and automatic resume.

Usage:
  prado-train --flagfile=configs/pnlp_mixer_base.flags --model_dir=DIR [--dataset=NAME
      --data_dir=DIR --languages=en,de --epochs=N]
  prado-train --flagfile=configs/pqrnn.flags --model_dir=DIR [...]
  prado-train --flagfile=configs/pqrnn_matt.flags --flagfile=configs/mtop.flags --model_dir=DIR

--model=pqrnn_matt generates the decoupled parse (a seq2seq model), as does its float baseline
--model=lstm_seq2seq (configs/lstm_seq2seq.flags); they need a dataset with parses
(mtop, massive, demo). Training examples whose parse cannot be written as ontology tokens and
pointers to source tokens are skipped and counted (printed by reason).

Flags given after --flagfile override it. Running the same command again on the same
--model_dir resumes from the last checkpoint (also after kill -9); a finished run says so and
exits. The folder then holds everything `prado-export` and `prado-eval` need.
"""
from __future__ import annotations

import json
import logging
import os
import sys
import time

from absl import app, flags

from prado_tiny import common_flags

common_flags.define_data_flags()
flags.adopt_module_key_flags(common_flags)  # so --help lists the shared flags too
flags.DEFINE_string("model_dir", None, "Where checkpoints, vocabularies and logs are written.")
flags.DEFINE_string("dev_split", "dev", "Development split for early stopping ('' = none).")
flags.DEFINE_integer("max_train_examples", 0, "Use only the first N training examples (0 = all).")
# Model.
flags.DEFINE_enum("model", "pnlp_mixer", ["pnlp_mixer", "pqrnn", "bilstm", "transformer",
                                         "pqrnn_matt", "lstm_seq2seq"],
                  "Model type: pnlp_mixer (MinHash projection over WordPiece pieces, MLP-Mixer), "
                  "pqrnn (ternary projection over whole tokens, bidirectional QRNN), or the "
                  "baselines with WordPiece embeddings: bilstm, transformer; pqrnn_matt (pQRNN "
                  "encoder and merged-attention decoder generating the decoupled parse); lstm_seq2seq (its "
                  "float baseline: WordPiece embeddings, BiLSTM encoder, attentional LSTM decoder).")
flags.DEFINE_integer("max_seq_len", 64, "Tokens per example; longer ones are cut (counted).")
flags.DEFINE_integer("num_hashes", 64, "MinHash fingerprint length H (1..127).")
flags.DEFINE_integer("ngram_size", 3, "Character n-gram size of the MinHash projection.")
flags.DEFINE_integer("bloom_size", 1024, "m: counting Bloom filter size.")
flags.DEFINE_integer("window", 1, "w: tokens concatenated on each side.")
flags.DEFINE_integer("hidden_dim", 256, "B: bottleneck size (the mixer's hidden size; the dense "
                     "bottleneck of pqrnn and pqrnn_matt).")
flags.DEFINE_integer("num_layers", 2, "Mixer blocks, or bidirectional QRNN layers.")
# pQRNN.
flags.DEFINE_integer("num_features", 512, "pqrnn: ternary projection features per token.")
flags.DEFINE_integer("state_dim", 128, "pqrnn, bilstm, lstm_seq2seq (encoder): recurrent state "
                     "size per direction.")
flags.DEFINE_integer("kernel_width", 3, "pqrnn: width of the QRNN gate convolution.")
flags.DEFINE_integer("embedding_dim", 128, "bilstm, transformer, lstm_seq2seq: WordPiece embedding size (the "
                     "transformer's width).")
flags.DEFINE_enum("embedding", "table", ["table", "codes"],
                  "bilstm: `table`, one vector per WordPiece piece; `codes`, the table compressed "
                  "into compositional codes learned with the task (frozen when QAT starts).")
flags.DEFINE_integer("num_codebooks", 8, "bilstm --embedding=codes: M, codewords summed per piece.")
flags.DEFINE_integer("codebook_size", 16, "bilstm --embedding=codes: K, codewords per codebook "
                     "(2-256; K=16 packs two codes per byte).")
flags.DEFINE_float("code_temperature", 1.0, "bilstm --embedding=codes: Gumbel-softmax temperature.")
flags.DEFINE_integer("num_heads", 4, "transformer: attention heads; pqrnn_matt: cross-attention "
                     "heads of each decoder layer.")
flags.DEFINE_integer("ff_dim", 512, "transformer, pqrnn_matt (decoder): feed-forward hidden size.")
# pQRNN-MAtt's decoder (the encoder is pQRNN's: --num_features, --hidden_dim, --state_dim,
# --num_layers, --kernel_width, --zoneout, --dropout).
flags.DEFINE_integer("decoder_dim", 128, "pqrnn_matt: decoder width (embeddings and layers); "
                     "lstm_seq2seq: decoder LSTM state.")
flags.DEFINE_integer("num_decoder_layers", 2, "pqrnn_matt: merged-attention decoder layers; "
                     "lstm_seq2seq: decoder LSTM layers.")
flags.DEFINE_integer("max_target_len", 64, "pqrnn_matt: output ids per parse, <eos> included; "
                     "longer targets are skipped in training (counted).")
flags.DEFINE_float("decoder_dropout", 0.0, "pqrnn_matt: dropout on the decoder embeddings and in "
                   "its layers.")
flags.DEFINE_float("label_smoothing", 0.1, "pqrnn_matt: epsilon of the label-smoothed "
                   "cross-entropy.")
flags.DEFINE_boolean("int8_internals", True, "pqrnn_matt: QAT also rounds the int8 tensors the "
                     "converter adds inside the decoder's LayerNorms and attention and pointer "
                     "scores, so the exported decoder computes what was trained (six-language "
                     "MTOP: .tflite within 0.5 tree exact match of Keras in every language with "
                     "it, -2.32 on average and -7.66 in Thai without; BUILD.md).")
flags.DEFINE_integer("beam_width", 4, "pqrnn_matt: beam width of prado-eval, prado-export's parity "
                     "check and the Predictor (stored with the model; development scores during "
                     "training use constrained greedy decoding).")
flags.DEFINE_float("length_penalty_alpha", 0.6, "pqrnn_matt: alpha of the GNMT length penalty "
                   "((5 + |Y|) / 6)^alpha of beam search (stored with the model).")
flags.DEFINE_float("zoneout", 0.0, "pqrnn: zoneout probability of the first QRNN layer; layer i "
                   "uses zoneout^(i+1).")
flags.DEFINE_integer("token_mlp_dim", 0, "Token-mixing MLP hidden size (0 = max_seq_len).")
flags.DEFINE_integer("channel_mlp_dim", 0, "Channel-mixing MLP hidden size (0 = hidden_dim).")
flags.DEFINE_float("dropout", 0.0, "Dropout in the mixer blocks (between QRNN layers) and heads.")
flags.DEFINE_enum("intent_mode", "joint", ["joint", "multi_label"],
                  "joint: one softmax class per intent label (a#b is a class); multi_label: one "
                  "sigmoid per atomic intent.")
# Text.
flags.DEFINE_integer("wordpiece_vocab_size", 4000,
                     "WordPiece vocabulary learned on the training tokens (0 = whole tokens). "
                     "pqrnn always hashes whole tokens.")
flags.DEFINE_integer("max_chars", 24, "Codepoints per token or piece.")
flags.DEFINE_bool("lowercase", True, "Lower-case tokens before hashing (--nolowercase keeps case, "
                  "so a capitalised name hashes differently from the same word in lower case).")
flags.DEFINE_integer("max_pieces", 6, "WordPiece pieces per token.")
# Training.
flags.DEFINE_integer("epochs", 50, "Maximum number of training epochs (QAT epochs included).")
flags.DEFINE_integer("batch_size", 256, "Global batch size.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak Adam learning rate.")
flags.DEFINE_integer("warmup_steps", 100, "Linear warm-up steps before the cosine decay.")
flags.DEFINE_float("min_lr_ratio", 0.0, "Final learning rate as a fraction of the peak.")
flags.DEFINE_float("slot_loss_weight", 1.0, "Weight of the slot loss in the joint loss.")
flags.DEFINE_integer("patience", 5, "Stop after N epochs without a better dev exact match (0: never).")
flags.DEFINE_integer("qat_epochs", 5, "Quantization-aware training: -1 whole run, 0 none, N last N epochs.")
flags.DEFINE_integer("seed", 0, "Random seed; the same seed repeats a run.")
flags.DEFINE_float("checkpoint_secs", 120.0, "Seconds between checkpoints within an epoch (0: epoch ends only).")
flags.DEFINE_bool("progress", True, "Show a progress bar.")
flags.DEFINE_integer("bucket_window", 50, "Batch examples of similar length within windows of N "
                     "batches, so batches pad less (0: plain shuffled batches).")
flags.DEFINE_float("distortion", 0.0, "Text distortion in training: each character of each "
                   "training token is deleted, duplicated from the utterance or swapped with this "
                   "probability, anew in every batch (0: off). pQRNN uses it for robustness.")
flags.DEFINE_string("init_from", None, "A trained uncompressed BiLSTM folder (prado-train "
                    "--model=bilstm, same data) to start from: its WordPiece vocabulary, labels and "
                    "weights; with --embedding=codes its table compressed by residual k-means is the "
                    "initial codes, which training then learns with the task.")
flags.DEFINE_string("teacher", None, "Distillation: a teacher file for the training split, written "
                    "by `prado-eval --split=train --teacher_out=FILE` of any toolkit model or by any "
                    "framework in that format (prado_tiny/data/teacher.py).")
flags.DEFINE_float("distill_alpha", 0.5, "Distillation: weight a of the gold loss in "
                   "a * CE(gold) + (1 - a) * T^2 * KL(teacher_T || student_T).")
flags.DEFINE_float("distill_temperature", 2.0, "Distillation: the temperature T.")
flags.DEFINE_integer("max_steps_per_epoch", 0, "Cut epochs to N steps (smoke runs; 0 = whole epochs).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy: default (one device), mirrored (all local GPUs, or the "
                  "CPU devices of --cpu_devices), multi_worker (TF_CONFIG).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into N logical devices (to use mirrored "
                     "without GPUs, e.g. for testing).")
FLAGS = flags.FLAGS

logger = logging.getLogger("prado_tiny.train")


def _strategy():
    import tensorflow as tf
    if FLAGS.cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_devices)
    if FLAGS.strategy == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if FLAGS.strategy == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def _read(split, report_name):
    from prado_tiny.data.example import DataError, ReadReport
    from prado_tiny.data.registry import DatasetError, read_dataset
    report = ReadReport()
    try:
        examples = list(read_dataset(FLAGS.dataset, FLAGS.data_dir, split, FLAGS.languages or None,
                                     skip_bad_rows=FLAGS.skip_bad_rows, report=report))
    except (DataError, DatasetError) as e:
        raise app.UsageError(f"{report_name}: {e}") from None
    if not examples:
        raise app.UsageError(f"{report_name}: no examples in {FLAGS.dataset} split {split!r} "
                             f"for languages {FLAGS.languages or 'all'}")
    return examples, report


_LOCK = None


def _lock(model_dir: str) -> None:
    """One prado-train per model folder: two would overwrite each other's checkpoints. The lock
    is an flock, released by the kernel when the process ends, also on kill -9."""
    import fcntl
    global _LOCK
    os.makedirs(model_dir, exist_ok=True)
    f = open(os.path.join(model_dir, ".train.lock"), "a+")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        raise app.UsageError(f"{model_dir}: another prado-train (pid {f.read().strip() or '?'}) is "
                             f"training in this folder; wait for it or use another --model_dir")
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    _LOCK = f


EMBEDDING_MODELS = ("bilstm", "transformer", "lstm_seq2seq")


def input_form() -> str:
    """pNLP-Mixer hashes WordPiece pieces (unless --wordpiece_vocab_size=0), pQRNN whole tokens;
    the BiLSTM baseline looks pieces up in its embedding table."""
    if FLAGS.model in EMBEDDING_MODELS:
        return "piece_ids"
    if FLAGS.model in ("pqrnn", "pqrnn_matt"):
        return "codepoints"
    return "subwords" if FLAGS.wordpiece_vocab_size > 0 else "codepoints"


def uses_subwords() -> bool:
    return input_form() in ("subwords", "piece_ids")


def model_config() -> dict:
    """The model's config from the flags (the model type's own fields only)."""
    if FLAGS.model == "bilstm":
        return {"max_seq_len": FLAGS.max_seq_len, "embedding_dim": FLAGS.embedding_dim,
                "state_dim": FLAGS.state_dim, "num_layers": FLAGS.num_layers,
                "dropout": FLAGS.dropout, "intent_mode": FLAGS.intent_mode,
                # Only for the compressed table, so that table folders resume unchanged.
                **({"embedding": "codes", "num_codebooks": FLAGS.num_codebooks,
                    "codebook_size": FLAGS.codebook_size,
                    "code_temperature": FLAGS.code_temperature}
                   if FLAGS.embedding == "codes" else {})}
    if FLAGS.model == "transformer":
        return {"max_seq_len": FLAGS.max_seq_len, "embedding_dim": FLAGS.embedding_dim,
                "num_heads": FLAGS.num_heads, "ff_dim": FLAGS.ff_dim,
                "num_layers": FLAGS.num_layers, "dropout": FLAGS.dropout,
                "intent_mode": FLAGS.intent_mode}
    if FLAGS.model == "pqrnn_matt":
        # output_vocab_size and pointer_offset come from the output vocabulary (main).
        return {"max_seq_len": FLAGS.max_seq_len, "num_features": FLAGS.num_features,
                "seed": FLAGS.seed, "bottleneck_dim": FLAGS.hidden_dim,
                "state_dim": FLAGS.state_dim, "num_layers": FLAGS.num_layers,
                "kernel_width": FLAGS.kernel_width, "zoneout": FLAGS.zoneout,
                "dropout": FLAGS.dropout, "max_target_len": FLAGS.max_target_len,
                "hidden_dim": FLAGS.decoder_dim, "num_decoder_layers": FLAGS.num_decoder_layers,
                "num_heads": FLAGS.num_heads, "ff_dim": FLAGS.ff_dim,
                "decoder_dropout": FLAGS.decoder_dropout, "label_smoothing": FLAGS.label_smoothing,
                "int8_internals": FLAGS.int8_internals}
    if FLAGS.model == "lstm_seq2seq":
        # output_vocab_size, pointer_offset and vocab_size come from the vocabularies (main).
        return {"max_seq_len": FLAGS.max_seq_len, "embedding_dim": FLAGS.embedding_dim,
                "state_dim": FLAGS.state_dim, "num_layers": FLAGS.num_layers,
                "hidden_dim": FLAGS.decoder_dim, "num_decoder_layers": FLAGS.num_decoder_layers,
                "dropout": FLAGS.dropout, "decoder_dropout": FLAGS.decoder_dropout,
                "max_target_len": FLAGS.max_target_len, "label_smoothing": FLAGS.label_smoothing}
    if FLAGS.model == "pqrnn":
        return {"max_seq_len": FLAGS.max_seq_len, "num_features": FLAGS.num_features,
                "seed": FLAGS.seed, "bottleneck_dim": FLAGS.hidden_dim,
                "state_dim": FLAGS.state_dim, "num_layers": FLAGS.num_layers,
                "kernel_width": FLAGS.kernel_width, "zoneout": FLAGS.zoneout,
                "dropout": FLAGS.dropout, "intent_mode": FLAGS.intent_mode}
    return {
        "max_seq_len": FLAGS.max_seq_len, "num_hashes": FLAGS.num_hashes,
        "ngram_size": FLAGS.ngram_size, "bloom_size": FLAGS.bloom_size, "window": FLAGS.window,
        "seed": FLAGS.seed, "hidden_dim": FLAGS.hidden_dim, "num_layers": FLAGS.num_layers,
        "token_mlp_dim": FLAGS.token_mlp_dim or FLAGS.max_seq_len,
        "channel_mlp_dim": FLAGS.channel_mlp_dim or FLAGS.hidden_dim,
        "dropout": FLAGS.dropout, "intent_mode": FLAGS.intent_mode,
    }


def model_spec(vocab_size_hint=None) -> dict:
    subwords = uses_subwords()
    spec = {
        "model_type": FLAGS.model,
        "intent_mode": FLAGS.intent_mode,
        "input": input_form(),
        "qat": FLAGS.qat_epochs != 0,
        "config": model_config(),
        "data_dir": os.path.abspath(FLAGS.data_dir) if FLAGS.data_dir else None,
        "data": dict({"dataset": FLAGS.dataset, "languages": sorted(FLAGS.languages),
                      "wordpiece_vocab_size": FLAGS.wordpiece_vocab_size if subwords else 0,
                      "max_chars": FLAGS.max_chars,
                      "max_pieces": FLAGS.max_pieces, "max_train_examples": FLAGS.max_train_examples},
                     # Only with a teacher, so that folders trained before distillation existed
                     # resume unchanged.
                     **({"distortion": FLAGS.distortion} if FLAGS.distortion else {}),
                     **({"teacher": {"path": os.path.abspath(FLAGS.teacher),
                                     "alpha": FLAGS.distill_alpha,
                                     "temperature": FLAGS.distill_temperature}}
                        if FLAGS.teacher else {}),
                     **({"init_from": os.path.abspath(FLAGS.init_from)} if FLAGS.init_from else {})),
    }
    if FLAGS.model in SEQ2SEQ_MODELS:
        # How the model is decoded by default (prado-eval, prado-export, the Predictor).
        spec["decoding"] = {"beam_width": FLAGS.beam_width,
                            "length_penalty_alpha": FLAGS.length_penalty_alpha}
    return spec


SEQ2SEQ_MODELS = ("pqrnn_matt", "lstm_seq2seq")


def _check_seq2seq_flags() -> None:
    if FLAGS.model not in SEQ2SEQ_MODELS:
        return
    if FLAGS.intent_mode != "joint":
        raise app.UsageError(f"--model={FLAGS.model} generates parses: --intent_mode="
                             f"{FLAGS.intent_mode} does not apply (leave it at joint)")
    if FLAGS.teacher:
        raise app.UsageError(f"--teacher distils intent and slot logits; --model={FLAGS.model} "
                             f"has none")
    if FLAGS.model == "lstm_seq2seq" and FLAGS.qat_epochs != 0:
        raise app.UsageError(f"--model=lstm_seq2seq is a float baseline (evaluated from its "
                             f"folder, not exported): use --qat_epochs=0, not {FLAGS.qat_epochs}")
    if FLAGS.beam_width < 1:
        raise app.UsageError(f"--beam_width must be positive, got {FLAGS.beam_width}")
    if FLAGS.length_penalty_alpha < 0:
        raise app.UsageError(f"--length_penalty_alpha must be >= 0, got {FLAGS.length_penalty_alpha}")
    for name in ("decoder_dim", "num_decoder_layers", "num_heads", "ff_dim", "max_target_len"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(f"--{name} must be positive, got {getattr(FLAGS, name)}")
    if FLAGS.decoder_dim % FLAGS.num_heads:
        raise app.UsageError(f"--decoder_dim={FLAGS.decoder_dim} is not divisible by "
                             f"--num_heads={FLAGS.num_heads}")
    for name in ("decoder_dropout", "label_smoothing"):
        if not 0.0 <= getattr(FLAGS, name) < 1.0:
            raise app.UsageError(f"--{name} must be in [0, 1), got {getattr(FLAGS, name)}")


def _output_vocab(train):
    """The OutputVocab of the training parses; a UsageError for a dataset without parses."""
    from prado_tiny.data.seq2seq_targets import OutputVocab, TargetError
    with_parse = sum(ex.parse is not None for ex in train)
    if not with_parse:
        raise app.UsageError(
            f"--model={FLAGS.model} learns to generate decoupled parses, but the {len(train)} "
            f"training examples of --dataset={FLAGS.dataset} have none (datasets with parses: "
            f"mtop, massive, demo); train an intent/slot model (pqrnn, pnlp_mixer) on "
            f"{FLAGS.dataset} instead")
    try:
        return OutputVocab.build(train, max_source_len=FLAGS.max_seq_len)
    except TargetError as e:
        raise app.UsageError(f"training data: {e} (use --skip_bad_rows to skip malformed rows)") from None


def _wordpiece(train):
    """The WordPiece vocabulary learned on the training tokens, or None for a model that reads
    whole tokens."""
    from prado_tiny.data.text_encoder import TextEncoder
    from prado_tiny.data.wordpiece import learn_vocabulary
    if not uses_subwords():
        return None
    plain = TextEncoder(max_tokens=FLAGS.max_seq_len, max_chars=FLAGS.max_chars,
                        lowercase=FLAGS.lowercase)
    t0 = time.time()
    wordpiece = learn_vocabulary([list(e.tokens) for e in train], FLAGS.wordpiece_vocab_size,
                                 normalize=plain.normalize_token)
    print(f"prado-train: WordPiece vocabulary of {len(wordpiece)} pieces "
          f"learned in {time.time() - t0:.1f} s", flush=True)
    return wordpiece


def main(argv):
    del argv
    if not FLAGS.model_dir:
        raise app.UsageError("--model_dir is required")
    if FLAGS.model in EMBEDDING_MODELS and FLAGS.wordpiece_vocab_size < 1:
        raise app.UsageError(f"--model={FLAGS.model} embeds WordPiece pieces: it needs "
                             f"--wordpiece_vocab_size > 0")
    if FLAGS.embedding == "codes" and FLAGS.model != "bilstm":
        raise app.UsageError(f"--embedding=codes compresses the BiLSTM's table: it needs "
                             f"--model=bilstm, not {FLAGS.model}")
    if FLAGS.init_from and FLAGS.model != "bilstm":
        raise app.UsageError(f"--init_from starts a BiLSTM from a trained uncompressed one: it "
                             f"needs --model=bilstm, not {FLAGS.model}")
    _check_seq2seq_flags()
    from absl import logging as absl_logging
    absl_logging.set_verbosity(absl_logging.WARNING)  # TF's per-checkpoint INFO lines
    strategy = _strategy()  # before any other TF use: logical devices are fixed at start-up

    import numpy as np

    from prado_tiny.data.text_encoder import TextEncoder
    from prado_tiny.data.token_features import atomic_intents
    from prado_tiny.data.vocab import LabelVocab
    from prado_tiny.evaluation import dev_evaluator, seq2seq_dev_evaluator
    from prado_tiny.models import model_dir as md
    from prado_tiny.trainer import Trainer, TrainConfig, TrainingDiverged

    t_start = time.time()
    model_dir = FLAGS.model_dir
    _lock(model_dir)
    spec = model_spec()
    seq2seq = md.is_seq2seq(spec)
    old = md.read_spec(model_dir)
    train, train_report = _read("train", "training data")
    if FLAGS.max_train_examples:
        train = train[:FLAGS.max_train_examples]
    dev = _read(FLAGS.dev_split, "development data")[0] if FLAGS.dev_split else None
    print(f"prado-train: {len(train)} training examples"
          + (f", {len(dev)} development examples" if dev else "")
          + f" ({FLAGS.dataset}, languages: {','.join(sorted({e.language for e in train}))})", flush=True)

    if old is not None:
        # num_intents / num_slot_tags are derived from the data when the folder is created.
        derived = {k: (old.get("config") or {}).get(k) for k in ("num_intents", "num_slot_tags",
                                                                 "vocab_size", "output_vocab_size",
                                                                 "pointer_offset")
                   if k in (old.get("config") or {})}
        spec["config"].update(derived)
        # Config keys either side leaves out (a folder older than an option, or one without a
        # flag) compare as their config class's default.
        keys = ("model_type", "intent_mode", "input", "config", "data")
        was, now = md.with_config_defaults(old), md.with_config_defaults(spec)
        diff = md.spec_differences({k: was.get(k) for k in keys}, {k: now.get(k) for k in keys})
        if diff:
            raise app.UsageError(f"{model_dir} holds a model trained with other settings; use a new "
                                 f"--model_dir or the same flags. Differences: " + "; ".join(diff))
        try:
            vocab = md.load_output_vocab(model_dir) if seq2seq else LabelVocab.load(model_dir)
        except md.ModelDirError as e:
            raise app.UsageError(str(e)) from None
        if seq2seq and old.get("decoding") != spec["decoding"]:
            # Decoding settings do not change training: the new ones are kept.
            print(f"prado-train: decoding defaults {old.get('decoding')} -> {spec['decoding']}",
                  flush=True)
            md.write_spec(model_dir, dict(old, decoding=spec["decoding"]))
        encoder = TextEncoder.load(os.path.join(model_dir, "text_encoder"))
        if encoder.lowercase != FLAGS.lowercase:
            raise app.UsageError(f"{model_dir} holds a model trained with --lowercase="
                                 f"{encoder.lowercase}; use a new --model_dir or the same flag")
    elif FLAGS.init_from:
        # The reference's pieces index its table, so the codes model must use the same ones.
        from prado_tiny.compress import warm_start as ws
        try:
            ref_spec = ws.reference_spec(FLAGS.init_from)
            if ref_spec["data"].get("dataset") != FLAGS.dataset:
                raise ws.WarmStartError(f"{FLAGS.init_from} was trained on "
                                        f"{ref_spec['data'].get('dataset')}, not {FLAGS.dataset}")
            spec["config"].update({k: ref_spec["config"][k] for k in
                                   ("num_intents", "num_slot_tags", "vocab_size")})
            ws.check_config(ref_spec, spec["config"])
        except ws.WarmStartError as e:
            raise app.UsageError(str(e)) from None
        ws.copy_vocabularies(FLAGS.init_from, model_dir)
        vocab = LabelVocab.load(model_dir)
        encoder = TextEncoder.load(os.path.join(model_dir, "text_encoder"))
        md.write_spec(model_dir, spec)
    elif seq2seq:
        vocab = _output_vocab(train)
        wordpiece = _wordpiece(train)
        encoder = TextEncoder(max_tokens=FLAGS.max_seq_len, max_chars=FLAGS.max_chars,
                              max_pieces=FLAGS.max_pieces, wordpiece=wordpiece,
                              lowercase=FLAGS.lowercase)
        os.makedirs(model_dir, exist_ok=True)
        md.save_output_vocab(model_dir, vocab)
        encoder.save(os.path.join(model_dir, "text_encoder"))
        spec["config"].update(output_vocab_size=vocab.size, pointer_offset=vocab.pointer_offset)
        if spec["input"] == "piece_ids":
            spec["config"]["vocab_size"] = len(wordpiece) + 2  # + padding and out-of-vocabulary
        md.write_spec(model_dir, spec)
        print(f"prado-train: output vocabulary of {vocab.size} ids: {len(vocab.ontology)} intent "
              f"and slot labels, {vocab.max_source_len} pointers", flush=True)
    else:
        vocab = LabelVocab.from_examples(train)
        if FLAGS.intent_mode == "multi_label":
            # One class per atomic intent; the slot tags as the joint vocabulary has them.
            vocab = LabelVocab(sorted({p for e in train for p in atomic_intents(e.intent)}),
                               vocab.get_config()["slot_tags"][2:])
        wordpiece = _wordpiece(train)
        encoder = TextEncoder(max_tokens=FLAGS.max_seq_len, max_chars=FLAGS.max_chars,
                              max_pieces=FLAGS.max_pieces, wordpiece=wordpiece,
                              lowercase=FLAGS.lowercase)
        os.makedirs(model_dir, exist_ok=True)
        vocab.save(model_dir)
        encoder.save(os.path.join(model_dir, "text_encoder"))
        spec["config"].update(num_intents=vocab.num_intents, num_slot_tags=vocab.num_slot_tags)
        if spec["input"] == "piece_ids":
            spec["config"]["vocab_size"] = len(wordpiece) + 2  # + padding and out-of-vocabulary
        md.write_spec(model_dir, spec)
    spec = md.read_spec(model_dir)

    host = md.featurizer(spec)
    t0 = time.time()
    if seq2seq:
        try:
            train_set = md.featurize(train, spec, encoder, vocab, host, skip_unencodable=True)
        except ValueError as e:
            raise app.UsageError(f"training data: {e}") from None
    else:
        train_set = md.featurize(train, spec, encoder, vocab, host)
    dev_set = md.featurize(dev, spec, encoder, vocab, host) if dev else None
    print(f"prado-train: features of {len(train_set.values) + (len(dev_set.values) if dev_set else 0)} "
          f"tokens computed in {time.time() - t0:.1f} s", flush=True)
    if seq2seq:
        _report_targets(train, train_set, dev_set)
    if FLAGS.teacher:
        from prado_tiny.data.teacher import TeacherError, TeacherOutputs, attach, soft_targets
        if not 0.0 <= FLAGS.distill_alpha <= 1.0:
            raise app.UsageError(f"--distill_alpha must be in [0, 1], got {FLAGS.distill_alpha}")
        if FLAGS.distill_temperature <= 0:
            raise app.UsageError(f"--distill_temperature must be positive, got "
                                 f"{FLAGS.distill_temperature}")
        try:
            targets = soft_targets(TeacherOutputs.load(FLAGS.teacher), train_set.examples,
                                   train_set.lengths, vocab, FLAGS.distill_temperature,
                                   spec["intent_mode"])
        except TeacherError as e:
            raise app.UsageError(f"--teacher: {e}") from None
        attach(train_set, targets)
        print(f"prado-train: distilling from {FLAGS.teacher}: {len(train_set) - targets.missing} "
              f"of {len(train_set)} training examples have teacher outputs (alpha "
              f"{FLAGS.distill_alpha}, temperature {FLAGS.distill_temperature})", flush=True)
        if targets.missing == len(train_set):
            raise app.UsageError(f"--teacher: {FLAGS.teacher} holds none of the training examples "
                                 f"(matched by language and utterance)")
    unaligned = 0 if seq2seq else int((train_set.slot_weight == 0).sum())
    if unaligned:
        print(f"prado-train: {unaligned} training examples with unaligned slots train the intent only",
              flush=True)

    config = TrainConfig(epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
                         learning_rate=FLAGS.learning_rate, warmup_steps=FLAGS.warmup_steps,
                         min_lr_ratio=FLAGS.min_lr_ratio, slot_loss_weight=FLAGS.slot_loss_weight,
                         patience=FLAGS.patience, qat_epochs=FLAGS.qat_epochs, seed=FLAGS.seed,
                         checkpoint_secs=FLAGS.checkpoint_secs, progress=FLAGS.progress,
                         max_steps_per_epoch=FLAGS.max_steps_per_epoch,
                         bucket_window=FLAGS.bucket_window, distill_alpha=FLAGS.distill_alpha,
                         distill_temperature=FLAGS.distill_temperature)
    if not 0.0 <= FLAGS.distortion <= 1.0:
        raise app.UsageError(f"--distortion must be in [0, 1], got {FLAGS.distortion}")
    augment = (md.distortion_augmenter(spec, encoder, FLAGS.distortion, host)
               if FLAGS.distortion else None)
    evaluator = seq2seq_dev_evaluator(vocab) if seq2seq else dev_evaluator(vocab, spec["intent_mode"])
    trainer = Trainer(model_dir, lambda: md.build_model(spec, quantize=False), train_set, dev_set,
                      config, evaluate_fn=evaluator if dev_set else None,
                      intent_mode=spec["intent_mode"], strategy=strategy, augment=augment)
    if int(trainer.state["epoch"]) == 0 and trainer.manager.latest_checkpoint is None:
        md.dummy_input(trainer.model, spec)
        params = int(sum(np.prod(v.shape) for v in trainer.model.trainable_variables))
        print(f"prado-train: {spec['model_type']} with {params:,} parameters, {trainer.replicas} "
              f"replica(s), {trainer.steps_per_epoch} steps per epoch", flush=True)
        if FLAGS.init_from:
            from prado_tiny.compress.warm_start import WarmStartError, warm_start
            try:
                warm_start(trainer.model, FLAGS.init_from, FLAGS.seed,
                           log=lambda m: print("prado-train: " + m, flush=True))
            except WarmStartError as e:
                raise app.UsageError(str(e)) from None
    try:
        history = trainer.fit()
    except TrainingDiverged as e:
        print(f"prado-train: {e}", file=sys.stderr, flush=True)
        sys.exit(1)
    best = history.get("best_epoch") or {}
    rates = [e["examples_per_second"] for e in history.get("epochs", []) if e.get("examples_per_second")]
    summary = {"model_dir": model_dir, "best_epoch": best.get("epoch"),
               "dev_exact_match": best.get("dev_exact_match"),
               "dev_intent_accuracy": best.get("dev_intent_accuracy"),
               "dev_slot_f1": best.get("dev_slot_f1"),
               **({"dev_tree_exact_match": best.get("dev_tree_exact_match"),
                   "training_examples": len(train_set),
                   "skipped_training_examples": sum(train_set.skipped.values())}
                  if seq2seq else {}),
               "examples_per_second_median": float(np.median(rates)) if rates else None,
               "seconds": round(time.time() - t_start, 1)}
    print("prado-train: done " + json.dumps(summary), flush=True)
    sys.stdout.flush()


def _report_targets(train, train_set, dev_set) -> None:
    """Prints how many examples have seq2seq targets; never skips silently."""
    skipped = sum(train_set.skipped.values())
    print(f"prado-train: seq2seq targets for {len(train_set)} of {len(train)} training examples; "
          f"skipped {train_set.skipped_summary()}", flush=True)
    for reason, samples in train_set.samples.items():
        print(f"prado-train:   e.g. {reason}: {samples[0]}", flush=True)
    if skipped > 0.2 * len(train):
        print(f"prado-train: WARNING: {100 * skipped / len(train):.1f}% of the training examples "
              f"have no target (raise --max_seq_len / --max_target_len if the reason is length)",
              flush=True)
    if dev_set is not None and dev_set.skipped:
        print(f"prado-train: {sum(dev_set.skipped.values())} of {len(dev_set)} development examples "
              f"have no pointer target ({dev_set.skipped_summary()}); they stay in the "
              f"development scores", flush=True)


def run():
    common_flags.run_main(main, __name__)


if __name__ == "__main__":
    run()
