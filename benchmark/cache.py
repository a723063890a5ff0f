"""The feature cache: features are extracted once per (encoder, weights, preprocessing, dataset, split,
feature kind, code version) and reused by every protocol.

An entry is a directory named by the SHA-256 of its canonical key fields, holding one `.npy` per
array (memory-mapped on read) and `manifest.json` (key fields, shapes, dtypes, checksums). Entries are
written to a temporary directory and renamed into place, and verified on every read: a corrupt or
stale entry is reported, removed and rebuilt, never used.

Under torchrun each rank writes a shard (`<digest>.shards/<rank>-of-<world>/`, with the dataset
positions it holds in `index.npy`); `load` reads a complete shard set as one array in dataset order.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.atomic import write_atomically
from benchmark.errors import UserError
from benchmark.identity import FeatureKey

log = logging.getLogger(__name__)
CACHE_FORMAT_VERSION = 1  # how an entry is laid out on disk (the key's own schema is identity.KEY_SCHEMA)
CACHE_ENV = "TRANSFERBENCH_CACHE"


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "transferbench").expanduser()


def array_checksum(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).view(np.uint8).reshape(-1)).hexdigest()


class CorruptEntry(Exception):
    pass


class FeatureCache:
    def __init__(self, root: str | Path | None = None):
        self.root = Path(root).expanduser() if root else default_cache_dir()
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"the feature cache {self.root} is a file; pass a directory as --cache-dir (or "
                            f"${CACHE_ENV})")

    def entry_dir(self, key: FeatureKey) -> Path:
        return self.root / "features" / key.digest[:2] / key.digest

    def shards_dir(self, key: FeatureKey) -> Path:
        return self.entry_dir(key).with_name(key.digest + ".shards")

    def load(self, key: FeatureKey) -> dict[str, np.ndarray] | None:
        """The cached arrays (memory-mapped, or joined from a complete set of rank shards), or None
        when absent; a bad entry is removed."""
        entry = self.entry_dir(key)
        if not entry.exists():
            return self.load_shards(key)
        try:
            return read_entry(entry, key)
        except CorruptEntry as err:
            log.warning("feature cache entry %s is invalid (%s); removing it and recomputing", entry, err)
            remove_entry(entry)
            return None

    def recorded_fields(self, digest: str) -> dict[str, Any] | None:
        """The key fields an entry's manifest records (None when the entry is gone or unreadable)."""
        try:
            manifest = json.loads((self.root / "features" / digest[:2] / digest / "manifest.json").read_text())
        except (OSError, ValueError):
            return None
        return manifest.get("key") if isinstance(manifest, dict) else None

    def contains(self, key: FeatureKey) -> bool:
        """Whether an entry (or a complete shard set) exists, without reading it (for planning)."""
        if (self.entry_dir(key) / "manifest.json").exists():
            return True
        shards = self.shards_dir(key)
        return any(all((shards / shard_name(r, w) / "manifest.json").exists() for r in range(w))
                   for w in shard_world_sizes(shards))

    def save(self, key: FeatureKey, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.write_atomically(self.entry_dir(key), key, arrays)
        return read_entry(self.entry_dir(key), key)

    def save_shard(self, key: FeatureKey, rank: int, world_size: int, arrays: dict[str, np.ndarray]) -> None:
        """One rank's part of an entry; `arrays["index"]` gives the dataset position of each row."""
        if "index" not in arrays:
            raise ValueError("a cache shard needs an 'index' array of dataset positions")
        self.write_atomically(self.shards_dir(key) / shard_name(rank, world_size), key, arrays)

    def load_shards(self, key: FeatureKey) -> dict[str, np.ndarray] | None:
        """The rank shards of an entry joined in dataset order (padding duplicates dropped), or None
        unless every shard of one world size is present and valid."""
        for world_size in shard_world_sizes(self.shards_dir(key)):
            try:
                parts = [read_entry(self.shards_dir(key) / shard_name(r, world_size), key) for r in range(world_size)]
            except (CorruptEntry, FileNotFoundError):
                continue
            index = np.concatenate([p["index"] for p in parts])
            index, first = np.unique(index, return_index=True)  # sorted positions, each row once
            names = [name for name in parts[0] if name != "index"]
            return {name: np.concatenate([p[name] for p in parts])[first] for name in names}
        return None

    def write_atomically(self, entry: Path, key: FeatureKey, arrays: dict[str, np.ndarray]) -> None:
        write_atomically(entry, lambda tmp: write_entry(tmp, key, arrays), directory=True)

    def get_or_compute(self, key: FeatureKey, compute: Callable[[], dict[str, np.ndarray]]
                       ) -> tuple[dict[str, np.ndarray], bool]:
        """(arrays, hit): the cached arrays, or compute, store and return them. Writers of the same
        entry hold a file lock, so concurrent runs compute each entry once."""
        cached = self.load(key)
        if cached is not None:
            return cached, True
        with self.lock(key):
            cached = self.load(key)  # another process may have written it while we waited
            if cached is not None:
                return cached, True
            return self.save(key, compute()), False

    @contextmanager
    def lock(self, key: FeatureKey) -> Iterator[None]:
        path = self.root / "locks" / f"{key.digest}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def shard_name(rank: int, world_size: int) -> str:
    return f"{rank:05d}-of-{world_size:05d}"


def shard_world_sizes(directory: Path) -> list[int]:
    if not directory.is_dir():
        return []
    return sorted({int(p.name.split("-of-")[1]) for p in directory.iterdir() if "-of-" in p.name}, reverse=True)


def write_entry(directory: Path, key: FeatureKey, arrays: dict[str, np.ndarray]) -> None:
    manifest = {"cache_format": CACHE_FORMAT_VERSION, "digest": key.digest, "key": key.fields(), "arrays": {}}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        np.save(directory / f"{name}.npy", array)
        manifest["arrays"][name] = {"shape": list(array.shape), "dtype": str(array.dtype),
                                    "sha256": array_checksum(array)}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str))


def remove_entry(entry: Path) -> None:
    """Remove a damaged entry, whether a directory or (replaced by accident) a file."""
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def read_entry(directory: Path, key: FeatureKey) -> dict[str, np.ndarray]:
    if not directory.is_dir():
        raise CorruptEntry("the entry is not a directory")
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        raise CorruptEntry(f"unreadable manifest: {err}") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("arrays"), dict):
        raise CorruptEntry("the manifest is not a transferbench cache manifest")
    if manifest.get("cache_format") != CACHE_FORMAT_VERSION:
        raise CorruptEntry(f"cache format {manifest.get('cache_format')} != current {CACHE_FORMAT_VERSION}")
    if manifest.get("digest") != key.digest:
        raise CorruptEntry("manifest belongs to a different key")
    return {name: read_array(directory / f"{name}.npy", meta) for name, meta in manifest["arrays"].items()}


def read_array(path: Path, meta: dict[str, Any]) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r")
    except (OSError, ValueError) as err:
        raise CorruptEntry(f"{path.name}: {err}") from None
    if not isinstance(meta, dict) or list(array.shape) != meta.get("shape") or str(array.dtype) != meta.get("dtype"):
        raise CorruptEntry(f"{path.name}: shape/dtype {array.shape}/{array.dtype} != manifest")
    if array_checksum(array) != meta.get("sha256"):
        raise CorruptEntry(f"{path.name}: checksum mismatch")
    return array
