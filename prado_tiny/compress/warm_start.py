"""Warm start of a task-aware compressed model from a trained uncompressed one.

The path for a user who already has an embedding model (`prado-train --init_from=DIR`): the new
model takes the reference's WordPiece vocabulary, labels and every weight but the table; the
table is compressed by residual k-means into M codebooks of K codewords, which become the
initial codes and codebooks of `CodeEmbedding`. Training then continues with the task loss, so
the codes move away from the offline fit wherever the task pays for it (task-aware compression
as in Sathyendra et al., arXiv 2012.00124, started from the offline solution rather than from
random codes: from random codes, MTOP needs many more epochs to reach the same loss).
"""
from __future__ import annotations

import os
import shutil
from typing import Callable, Dict

import numpy as np

# Config keys that must agree between the reference and the compressed model (all but the
# embedding's own settings).
SHARED_CONFIG = ("embedding_dim", "state_dim", "num_layers", "max_seq_len", "num_intents",
                 "num_slot_tags", "vocab_size", "intent_mode")


class WarmStartError(ValueError):
    """The reference folder cannot start this model; the message says why."""


def reference_spec(reference_dir: str) -> Dict:
    """The reference folder's spec, checked to be an uncompressed BiLSTM."""
    from prado_tiny.models import model_dir as md
    if not os.path.isdir(reference_dir):
        raise WarmStartError(f"{reference_dir}: no such model folder")
    spec = md.read_spec(reference_dir)
    if spec is None:
        raise WarmStartError(f"{reference_dir}: not a prado-train model folder (no model.json)")
    if spec["model_type"] != "bilstm" or spec["config"].get("embedding", "table") != "table":
        raise WarmStartError(f"{reference_dir}: --init_from needs an uncompressed BiLSTM "
                             f"(prado-train --model=bilstm), not {spec['model_type']} "
                             f"with embedding {spec['config'].get('embedding', 'table')!r}")
    return spec


def copy_vocabularies(reference_dir: str, model_dir: str) -> None:
    """The reference's label vocabulary and text encoder (its WordPiece pieces index the table)."""
    from prado_tiny.data.vocab import LabelVocab
    os.makedirs(model_dir, exist_ok=True)
    LabelVocab.load(reference_dir).save(model_dir)
    dst = os.path.join(model_dir, "text_encoder")
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(os.path.join(reference_dir, "text_encoder"), dst)


def check_config(reference: Dict, config: Dict) -> None:
    """Raises WarmStartError naming every shared setting that differs."""
    diff = [f"{k}: {reference['config'].get(k)} in the reference, {config.get(k)} here"
            for k in SHARED_CONFIG if reference["config"].get(k) != config.get(k)]
    if diff:
        raise WarmStartError("--init_from: the reference has other settings; " + "; ".join(diff))


def warm_start(model, reference_dir: str, seed: int = 0,
               log: Callable[[str], None] = print) -> Dict[str, float]:
    """Copies every non-embedding weight of the reference into `model` (built) and starts its
    `CodeEmbedding` from residual k-means codes of the reference table; an uncompressed `model`
    takes every weight, table included. Returns the fit's relative reconstruction error."""
    from prado_tiny.compress.offline import fit_additive_codes
    from prado_tiny.models import model_dir as md

    from prado_tiny.layers.code_embedding import CodeEmbedding

    ref, _, _, _ = md.load(reference_dir)
    # An uncompressed model continues from every weight (the control with equal training).
    codes = isinstance(model.embedding, CodeEmbedding)
    ours = [w for w in model.weights if not codes or "/embedding/" not in w.name]
    theirs = [w for w in ref.weights if not codes or "/embedding/" not in w.name]
    strip = lambda w: w.name.split("/", 1)[1]  # noqa: E731  (the model's own name differs)
    if [strip(w) for w in ours] != [strip(w) for w in theirs] or any(
            a.shape != b.shape for a, b in zip(ours, theirs)):
        raise WarmStartError(f"{reference_dir}: its weights do not match this model's layers")
    for a, b in zip(ours, theirs):
        a.assign(b)
    if not codes:
        log(f"warm start from {reference_dir}: {len(ours)} weights copied (table included)")
        return {"relative_error": 0.0}
    table = ref.embedding.embeddings.numpy()
    emb = model.embedding
    codes, books = fit_additive_codes(table, emb.num_codebooks, emb.codebook_size, seed)
    emb.initialize(codes, books)
    fit = books[np.arange(emb.num_codebooks)[None, :], codes].sum(1)
    err = float(np.linalg.norm(fit[2:] - table[2:]) / max(np.linalg.norm(table[2:]), 1e-12))
    log(f"warm start from {reference_dir}: {len(ours)} weights copied; table {table.shape[0]}x"
        f"{table.shape[1]} as {emb.num_codebooks}x{emb.codebook_size} codes by residual k-means, "
        f"relative error {err:.3f}")
    return {"relative_error": err}
