"""prado_tiny.layers: Keras layers and their bit-identical NumPy host implementations.

The Keras layer classes are created on first access so that the NumPy host featurizers (used in
data-loading workers) do not import TensorFlow.
"""
from prado_tiny.layers.minhash_projection import (  # noqa: F401
    MinHashFeaturizer,
    minhash_buckets_np,
    minhash_features_np,
    minhash_fingerprints_np,
)
from prado_tiny.layers.ternary_projection import TernaryFeaturizer, ternary_features_np  # noqa: F401

_LAZY = {
    "MinHashProjection": "prado_tiny.layers.minhash_projection",
    "TernaryProjection": "prado_tiny.layers.ternary_projection",
}

__all__ = ["MinHashProjection", "TernaryProjection", "MinHashFeaturizer", "TernaryFeaturizer",
           "minhash_features_np", "minhash_fingerprints_np", "minhash_buckets_np",
           "ternary_features_np"]


def __getattr__(name):
    if name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
