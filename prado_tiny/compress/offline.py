"""Offline (task-agnostic) compression of a trained embedding table: the baselines of
task-aware compression (Sathyendra et al., COLING 2020 Industry, arXiv 2012.00124).

Each method takes the float table `[V, D]` of a trained model and returns a `Compressed`: the
table as the compressed form reconstructs it (what the model would compute with) and the bytes
that form takes on a device. The task model is not retrained: that is what makes these offline,
and what the task-aware codes of `CodeEmbedding` are compared against.

Bytes, per method (int8 values, as in the toolkit's .tflite files):
- `int8`: per-tensor symmetric int8, `V * D`.
- `product_quantization`: D split into M sub-vectors, k-means with K centroids in each
  (Jegou et al., TPAMI 2011); codes packed as `CodeEmbedding` packs them, int8 centroids.
- `additive_codes`: M codebooks of K full-width codewords summed, fitted by residual k-means
  (the offline counterpart of compositional codes, same storage as `CodeEmbedding`).
- `low_rank`: truncated SVD, `V * r + r * D` int8 values.
- `magnitude_pruning`: tfmot's `prune_low_magnitude` mask at a constant sparsity; stored as
  compressed sparse rows (int8 value + uint8 column per non-zero, int32 row offsets).
- `weight_clustering`: tfmot's `cluster_weights` (k-means++ centroids); `ceil(log2 n)` bits
  per weight plus n float32 centroids.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from prado_tiny.layers.code_embedding import codes_per_byte


@dataclasses.dataclass
class Compressed:
    """A compressed table: `method`, its `setting` (human readable), the reconstructed float
    `table`, and `bytes` on device."""

    method: str
    setting: str
    table: np.ndarray
    bytes: int

    def rate(self, vocab_size: int, dim: int) -> float:
        """Compression of the embedding table against float32: 1 - bytes / (4 V D)."""
        return 1.0 - self.bytes / (4.0 * vocab_size * dim)


def _int8(x: np.ndarray) -> np.ndarray:
    """Per-tensor symmetric int8 round trip (narrow range, as `quantize_weight`)."""
    scale = max(float(np.abs(x).max()), 1e-8) / 127.0
    return np.clip(np.round(x / scale), -127, 127).astype(np.float32) * scale


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 25) -> tuple:
    """Lloyd's k-means with k-means++ seeding; returns (centroids [k, d], assignment [n])."""
    n = len(x)
    k = min(k, n)
    centroids = [x[rng.integers(n)]]
    d2 = ((x - centroids[0]) ** 2).sum(1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centroids.append(x[rng.choice(n, p=p)])
        d2 = np.minimum(d2, ((x - centroids[-1]) ** 2).sum(1))
    c = np.stack(centroids).astype(np.float64)
    x64 = x.astype(np.float64)
    assign = np.zeros(n, np.int64)
    for it in range(iters):
        dist = (x64 ** 2).sum(1)[:, None] - 2 * x64 @ c.T + (c ** 2).sum(1)[None]
        new = dist.argmin(1)
        if it and np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = x64[assign == j]
            if len(members):
                c[j] = members.mean(0)
    return c.astype(np.float32), assign


def _code_bytes(vocab_size: int, num_codebooks: int, codebook_size: int) -> int:
    return vocab_size * math.ceil(num_codebooks / codes_per_byte(codebook_size))


def int8(table: np.ndarray) -> Compressed:
    return Compressed("int8", "per tensor", _int8(table), table.size)


def product_quantization(table: np.ndarray, num_subspaces: int, num_centroids: int,
                         seed: int = 0) -> Compressed:
    v, d = table.shape
    if d % num_subspaces:
        raise ValueError(f"product quantization: dim {d} is not a multiple of {num_subspaces}")
    rng = np.random.default_rng(seed)
    w = d // num_subspaces
    out = np.empty_like(table)
    for m in range(num_subspaces):
        c, a = _kmeans(table[:, m * w:(m + 1) * w], num_centroids, rng)
        out[:, m * w:(m + 1) * w] = _int8(c)[a]
    return Compressed("product_quantization", f"M={num_subspaces} K={num_centroids}", out,
                      _code_bytes(v, num_subspaces, num_centroids) + num_subspaces * num_centroids * w)


def fit_additive_codes(table: np.ndarray, num_codebooks: int, codebook_size: int,
                       seed: int = 0) -> tuple:
    """Residual k-means: -> (codes int32 [V, M], codebooks float32 [M, K, D]) whose row sums
    `sum_m codebooks[m, codes[:, m]]` approximate `table`. Also the warm start of
    `CodeEmbedding.initialize` (prado-train --init_from)."""
    v, d = table.shape
    rng = np.random.default_rng(seed)
    residual = table.astype(np.float32).copy()
    codes = np.zeros((v, num_codebooks), np.int32)
    books = np.zeros((num_codebooks, codebook_size, d), np.float32)
    for m in range(num_codebooks):
        c, a = _kmeans(residual, codebook_size, rng)
        books[m, :len(c)], codes[:, m] = c, a
        residual -= c[a]
    return codes, books


def additive_codes(table: np.ndarray, num_codebooks: int, codebook_size: int,
                   seed: int = 0) -> Compressed:
    v, d = table.shape
    codes, books = fit_additive_codes(table, num_codebooks, codebook_size, seed)
    out = books[np.arange(num_codebooks)[None, :], codes].sum(1)
    return Compressed("additive_codes", f"M={num_codebooks} K={codebook_size}", _int8(out),
                      _code_bytes(v, num_codebooks, codebook_size) + num_codebooks * codebook_size * d)


def low_rank(table: np.ndarray, rank: int) -> Compressed:
    v, d = table.shape
    u, s, vt = np.linalg.svd(table.astype(np.float64), full_matrices=False)
    a = _int8((u[:, :rank] * s[:rank]).astype(np.float32))
    b = _int8(vt[:rank].astype(np.float32))
    return Compressed("low_rank", f"r={rank}", a @ b, (v + d) * rank)


def magnitude_pruning(table: np.ndarray, sparsity: float) -> Compressed:
    """tfmot's magnitude pruning mask, applied once (no retraining)."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    v, d = table.shape
    # tfmot's pruning wrapper does not build on an Embedding layer here (tf-keras 2.21); a
    # bias-free Dense holds the same [V, D] matrix.
    dense = keras.layers.Dense(d, use_bias=False)
    model = keras.Sequential([keras.Input((v,)), dense])
    dense.set_weights([table.astype(np.float32)])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        model, pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(sparsity, begin_step=0,
                                                                      frequency=1))
    for layer in pruned.layers:
        if hasattr(layer, "pruning_obj"):
            layer.pruning_step.assign(0)  # the step the schedule prunes at
            layer.pruning_obj.conditional_mask_update()
            layer.pruning_obj.weight_mask_op()
    w = tfmot.sparsity.keras.strip_pruning(pruned).layers[0].get_weights()[0]
    nnz = int(np.count_nonzero(w))
    return Compressed("magnitude_pruning", f"sparsity={sparsity:g}", _int8(w),
                      2 * nnz + 4 * (v + 1))


def weight_clustering(table: np.ndarray, num_clusters: int) -> Compressed:
    """tfmot's weight clustering (k-means++ centroids), no fine-tuning."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    v, d = table.shape
    emb = keras.layers.Embedding(v, d)
    model = keras.Sequential([keras.Input((1,), dtype="int32"), emb])
    emb.set_weights([table.astype(np.float32)])
    clustered = tfmot.clustering.keras.cluster_weights(
        model, number_of_clusters=num_clusters,
        cluster_centroids_init=tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS)
    w = tfmot.clustering.keras.strip_clustering(clustered).layers[0].get_weights()[0]
    bits = max(1, math.ceil(math.log2(num_clusters)))
    return Compressed("weight_clustering", f"clusters={num_clusters}", w,
                      math.ceil(v * d * bits / 8) + 4 * num_clusters)


# The default sweep of the report: settings from about 1 KB per 100 rows up to int8 alone.
DEFAULT_SWEEP = (
    ("int8", {}),
    ("product_quantization", dict(num_subspaces=8, num_centroids=16)),
    ("product_quantization", dict(num_subspaces=16, num_centroids=16)),
    ("product_quantization", dict(num_subspaces=8, num_centroids=256)),
    ("product_quantization", dict(num_subspaces=16, num_centroids=256)),
    ("additive_codes", dict(num_codebooks=8, codebook_size=16)),
    ("additive_codes", dict(num_codebooks=16, codebook_size=16)),
    ("low_rank", dict(rank=6)),
    ("low_rank", dict(rank=8)),
    ("low_rank", dict(rank=16)),
    ("low_rank", dict(rank=32)),
    ("magnitude_pruning", dict(sparsity=0.9)),
    ("magnitude_pruning", dict(sparsity=0.97)),
    ("magnitude_pruning", dict(sparsity=0.99)),
    ("weight_clustering", dict(num_clusters=2)),
    ("weight_clustering", dict(num_clusters=4)),
    ("weight_clustering", dict(num_clusters=16)),
)

METHODS = {"int8": int8, "product_quantization": product_quantization,
           "additive_codes": additive_codes, "low_rank": low_rank,
           "magnitude_pruning": magnitude_pruning, "weight_clustering": weight_clustering}


def compress(table: np.ndarray, method: str, **kwargs) -> Compressed:
    """`METHODS[method](table, **kwargs)`, with a clear error for an unknown method."""
    if method not in METHODS:
        raise ValueError(f"unknown compression method {method!r}; known: {', '.join(METHODS)}")
    return METHODS[method](np.asarray(table, np.float32), **kwargs)
