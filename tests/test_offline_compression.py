"""Tests for prado_tiny.compress.offline: each baseline's reconstruction error and byte count."""
import math

import numpy as np
import pytest

from prado_tiny.compress import offline


def table(v=200, d=16, seed=0):
    rng = np.random.default_rng(seed)
    # Low-rank structure plus noise, as trained tables have.
    return (rng.normal(size=(v, 4)) @ rng.normal(size=(4, d)) + 0.1 * rng.normal(size=(v, d))
            ).astype(np.float32)


def err(c, t):
    return float(np.mean((c.table - t) ** 2) / np.mean(t ** 2))


def test_int8_is_close_and_a_quarter():
    t = table()
    c = offline.compress(t, "int8")
    assert c.bytes == t.size and err(c, t) < 1e-3
    assert c.rate(*t.shape) == pytest.approx(0.75)


def test_product_quantization_bytes_and_more_centroids_fit_better():
    t = table()
    small = offline.compress(t, "product_quantization", num_subspaces=4, num_centroids=4)
    big = offline.compress(t, "product_quantization", num_subspaces=4, num_centroids=64)
    assert small.bytes == 200 * 1 + 4 * 4 * 4  # four 2-bit codes a byte, int8 centroids
    assert big.bytes == 200 * 4 + 4 * 64 * 4
    assert err(big, t) < err(small, t) < 1.0
    # Every sub-vector of the reconstruction is one of at most K values.
    assert len(np.unique(small.table[:, :4], axis=0)) <= 4
    with pytest.raises(ValueError, match="multiple"):
        offline.compress(t, "product_quantization", num_subspaces=5, num_centroids=4)


def test_additive_codes_improve_with_codebooks():
    t = table()
    one = offline.compress(t, "additive_codes", num_codebooks=1, codebook_size=16)
    four = offline.compress(t, "additive_codes", num_codebooks=4, codebook_size=16)
    assert four.bytes == 200 * 2 + 4 * 16 * 16
    assert err(four, t) < err(one, t)


def test_low_rank_recovers_a_low_rank_table():
    t = table()
    c = offline.compress(t, "low_rank", rank=4)
    assert c.bytes == (200 + 16) * 4 and err(c, t) < 0.02
    assert err(offline.compress(t, "low_rank", rank=1), t) > err(c, t)


def test_magnitude_pruning_keeps_the_largest_weights():
    t = table()
    c = offline.compress(t, "magnitude_pruning", sparsity=0.9)
    kept = c.table != 0
    assert abs(kept.mean() - 0.1) < 0.01
    assert np.abs(t[kept]).min() >= np.abs(t[~kept]).max() - 1e-6
    assert c.bytes == 2 * int(kept.sum()) + 4 * 201


def test_weight_clustering_uses_n_values():
    t = table()
    c = offline.compress(t, "weight_clustering", num_clusters=4)
    assert len(np.unique(c.table)) <= 4
    assert c.bytes == math.ceil(200 * 16 * 2 / 8) + 16
    assert err(c, t) < err(offline.compress(t, "weight_clustering", num_clusters=2), t)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown compression method"):
        offline.compress(table(), "zip")


def test_default_sweep_runs_on_a_small_table():
    t = table(v=64, d=32)
    for method, kwargs in offline.DEFAULT_SWEEP:
        c = offline.compress(t, method, **kwargs)
        assert c.table.shape == t.shape and np.all(np.isfinite(c.table)) and c.bytes > 0
