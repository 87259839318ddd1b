"""A cache of host-computed features, so training computes each example's features once.

Entries are keyed by (featurizer config fingerprint, example key). The fingerprint is part of
the cache's identity: a cache made for one config never answers for another (`set_config`
empties it when the config changes, and each config persists into its own folder
`<model_dir>/feature_cache/<fingerprint[:16]>/`). The example key combines the example's id and a
hash of its content, because ids alone are not unique across files (readers fall back to
`<file stem>:<line>`, the same for `en/train.txt` and `de/train.txt`).

Only deterministic features belong here: distorted examples change every epoch and must be
computed afresh (or cached under a key that includes the epoch's seed).

Memory is bounded by `max_bytes`: once full, new entries are not admitted (counted in `stats`
as `rejected`) rather than evicting old ones, since an epoch walks the whole data set in a
cycle and any eviction order would then miss every time.

Stored arrays are read-only views; `get_or_compute` stacks copies for a batch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from prado_tiny.data.text_encoder import config_fingerprint

logger = logging.getLogger(__name__)

Features = Union[np.ndarray, Dict[str, np.ndarray]]
CACHE_DIR = "feature_cache"
_META = "meta.json"
_DATA = "features.npz"
_FORMAT = 1


def example_key(example=None, *, id: Optional[str] = None, tokens: Optional[Sequence[str]] = None,
                language: str = "") -> str:
    """`<id>#<content hash>` of an `Example` (or of an explicit id and token list).

    Args:
      example: an object with `id`, `tokens` and optionally `language` (e.g. `Example`).
      id, tokens, language: used when `example` is None.
    """
    if example is not None:
        id = example.id
        tokens = example.tokens
        language = getattr(example, "language", "") or ""
    if tokens is None:
        raise ValueError("example_key needs an example or a token list")
    content = language + "\x1f" + "\x1e".join(tokens)
    digest = hashlib.sha1(content.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{id if id is not None else ''}#{digest}"


@dataclasses.dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    rejected: int = 0
    loaded: int = 0

    def summary(self) -> str:
        total = self.hits + self.misses
        rate = f"{100.0 * self.hits / total:.1f}%" if total else "n/a"
        return (f"feature cache: {self.hits} hits, {self.misses} misses (hit rate {rate}), "
                f"{self.rejected} not admitted (memory limit), {self.loaded} loaded from disk")


class FeatureCache:
    """Caches per-example feature arrays, keyed by featurizer config and example.

    Args:
      config: the featurizer's config: a dict (hashed as canonical JSON), an object with
        `fingerprint()` or `get_config()` (e.g. `TextEncoder`), or a fingerprint string.
      directory: optional model directory; `save()` / `load()` use
        `<directory>/feature_cache/<fingerprint[:16]>/`.
      max_bytes: memory limit for the cached arrays (None: no limit).

    Example:
    >>> cache = FeatureCache(encoder, directory="model_dir")
    >>> cache.load()  # no-op when nothing was saved for this config
    >>> keys = [example_key(ex) for ex in batch]
    >>> x = cache.get_or_compute(keys, lambda idx: encoder.encode_tokens_batch(
    ...     [batch[i].tokens for i in idx]))
    >>> cache.save()
    """

    def __init__(self, config, directory: Optional[Union[str, os.PathLike]] = None,
                 max_bytes: Optional[int] = 2 ** 30):
        self.directory = None if directory is None else os.fspath(directory)
        self.max_bytes = max_bytes
        self.stats = CacheStats()
        self._entries: Dict[str, Features] = {}
        self._bytes = 0
        self._layout = None  # None, or the field names of every entry ("" for a bare array)
        self._warned_full = False
        self.fingerprint = _fingerprint(config)

    # ----------------------------------------------------------------- config

    def set_config(self, config) -> bool:
        """Switches to another featurizer config; empties the cache if it differs. True if emptied."""
        fingerprint = _fingerprint(config)
        if fingerprint == self.fingerprint:
            return False
        self.fingerprint = fingerprint
        self.clear()
        return True

    @property
    def path(self) -> Optional[str]:
        """The folder this config persists into (None without a directory)."""
        if self.directory is None:
            return None
        return os.path.join(self.directory, CACHE_DIR, self.fingerprint[:16])

    # ----------------------------------------------------------------- entries

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    @property
    def nbytes(self) -> int:
        return self._bytes

    def get(self, key: str) -> Optional[Features]:
        """The cached features of `key` (read-only arrays), or None; counts a hit or a miss."""
        value = self._entries.get(key)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    def put(self, key: str, features: Features) -> bool:
        """Stores a read-only copy; False when the memory limit keeps it out."""
        return self._put(key, _freeze(features, copy=True))

    def _put(self, key: str, value: Features) -> bool:
        layout = tuple(sorted(value)) if isinstance(value, dict) else ("",)
        if self._layout is None:
            self._layout = layout
        elif layout != self._layout:
            raise TypeError(f"features of {key!r} have fields {layout}, the cache holds "
                            f"{self._layout}: every entry must have the same fields")
        size = _nbytes(value)
        old = self._entries.get(key)
        old_size = 0 if old is None else _nbytes(old)
        if self.max_bytes is not None and self._bytes - old_size + size > self.max_bytes:
            self.stats.rejected += 1
            if not self._warned_full:
                self._warned_full = True
                logger.warning("feature cache is full (max_bytes=%d); further examples are "
                               "computed every epoch", self.max_bytes)
            return False
        self._entries[key] = value
        self._bytes += size - old_size
        return True

    def get_or_compute(self, keys: Sequence[str],
                       compute: Callable[[List[int]], Sequence[Features]]) -> Features:
        """The stacked features of `keys`, computing only the missing ones.

        Args:
          keys: one key per example of the batch.
          compute: called once (if anything is missing) with the indices into `keys` of the
            missing examples; returns their features in that order (a stacked array, a dict of
            stacked arrays, or a list of per-example features).

        Returns:
          An array `[len(keys), ...]` (or a dict of them), in the order of `keys`; the examples'
          arrays must have the same shapes to be stacked (pad ragged features before caching).
        """
        if len(keys) == 0:
            raise ValueError("get_or_compute needs at least one key")
        found: List[Optional[Features]] = []
        missing: List[int] = []
        for i, key in enumerate(keys):
            value = self.get(key)
            found.append(value)
            if value is None:
                missing.append(i)
        if missing:
            computed = _unstack(compute(missing), len(missing))
            for i, value in zip(missing, computed):
                self.put(keys[i], value)
                found[i] = value
        return _stack(found)

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._layout = None

    # ----------------------------------------------------------------- persistence

    def save(self) -> str:
        """Writes all entries to `self.path` (replacing what was there); returns the folder."""
        if self.path is None:
            raise ValueError("FeatureCache.save needs a directory")
        keys = list(self._entries)
        arrays: Dict[str, np.ndarray] = {}
        fields = []
        # Field j is one block `f<j>` when every example's array has the same shape and dtype,
        # else one array per example `f<j>_<i>`; names are in meta.json, not in the npz.
        for j, name in enumerate(self._layout or ()):
            values = [_field(self._entries[k], name) for k in keys]
            same = bool(values) and all(
                v.shape == values[0].shape and v.dtype == values[0].dtype for v in values)
            if same:
                arrays[f"f{j}"] = np.stack(values)
            else:
                for i, v in enumerate(values):
                    arrays[f"f{j}_{i}"] = v
            fields.append([name, "stacked" if same else "ragged"])
        meta = {"format": _FORMAT, "fingerprint": self.fingerprint, "keys": keys,
                "fields": fields, "dict": self._layout is not None and self._layout != ("",)}
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(self.path))
        try:
            np.savez(os.path.join(tmp, _DATA), **arrays)
            with open(os.path.join(tmp, _META), "w", encoding="utf-8") as f:
                json.dump(meta, f, ensure_ascii=True)  # keys may hold lone surrogates
            if os.path.exists(self.path):
                shutil.rmtree(self.path)
            os.replace(tmp, self.path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return self.path

    def load(self) -> int:
        """Adds the entries saved for this config; returns how many (0 when none were saved)."""
        if self.path is None or not os.path.exists(os.path.join(self.path, _META)):
            return 0
        with open(os.path.join(self.path, _META), encoding="utf-8") as f:
            meta = json.load(f)
        if meta.get("format") != _FORMAT or meta.get("fingerprint") != self.fingerprint:
            logger.warning("ignoring feature cache at %s: made for another config", self.path)
            return 0
        keys = meta["keys"]
        per_field = {}
        with np.load(os.path.join(self.path, _DATA), allow_pickle=False) as data:
            for j, (name, kind) in enumerate(meta["fields"]):
                if kind == "stacked":
                    stacked = data[f"f{j}"]
                    stacked.setflags(write=False)
                    per_field[name] = list(stacked)  # read-only views into one block: no copy
                else:
                    per_field[name] = [_freeze(data[f"f{j}_{i}"], copy=False)
                                       for i in range(len(keys))]
        loaded = 0
        for i, key in enumerate(keys):
            if meta["dict"]:
                value = {name: per_field[name][i] for name in per_field}
            else:
                value = per_field[""][i]
            if self._put(key, value):
                loaded += 1
        self.stats.loaded += loaded
        return loaded

    def prune_stale(self) -> List[str]:
        """Deletes the saved caches of other configs under the directory; returns their folders."""
        if self.directory is None:
            return []
        root = os.path.join(self.directory, CACHE_DIR)
        if not os.path.isdir(root):
            return []
        removed = []
        for name in sorted(os.listdir(root)):
            folder = os.path.join(root, name)
            if os.path.isdir(folder) and folder != self.path:
                shutil.rmtree(folder)
                removed.append(folder)
        return removed


def _fingerprint(config) -> str:
    if isinstance(config, str):
        return config
    if hasattr(config, "fingerprint") and callable(config.fingerprint):
        return config.fingerprint()
    if hasattr(config, "get_config"):
        return config_fingerprint(config.get_config())
    return config_fingerprint(config)


def _freeze(features: Features, copy: bool) -> Features:
    if isinstance(features, dict):
        return {str(k): _freeze_array(v, copy) for k, v in features.items()}
    return _freeze_array(features, copy)


def _freeze_array(value, copy: bool) -> np.ndarray:
    arr = np.array(value, copy=True) if copy else np.asarray(value)
    if arr.dtype == object:
        raise TypeError("feature arrays must have a numeric dtype, not object")
    arr.setflags(write=False)
    return arr


def _nbytes(value: Features) -> int:
    if isinstance(value, dict):
        return sum(v.nbytes for v in value.values())
    return value.nbytes


def _field(value: Features, name: str) -> np.ndarray:
    return value[name] if isinstance(value, dict) else value


def _unstack(computed, n: int) -> List[Features]:
    if isinstance(computed, dict):
        parts = {k: list(np.asarray(v)) for k, v in computed.items()}
        out = [{k: parts[k][i] for k in parts} for i in range(n)]
    else:
        out = list(computed)
    if len(out) != n:
        raise ValueError(f"compute returned {len(out)} examples for {n} missing keys")
    return out


def _stack(values: List[Features]) -> Features:
    if values and isinstance(values[0], dict):
        return {k: np.stack([v[k] for v in values]) for k in values[0]}
    return np.stack(values)
