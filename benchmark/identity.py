"""What makes two numbers "the same": the one place the feature, cell and study keys are defined.

A stored feature array or result row is reused only when its key is equal, and a key holds every input
of the number it names:

    FeatureKey  encoder identity (source, architecture, weights sha256 or init seed, feature choice),
                resolved preprocessing, dataset identity (name, version, options, content fingerprint),
                split, feature kind, precision, and the versions of the code that extracts
    CellKey     the feature keys it reads, the column and registered protocol, the protocol's resolved
                parameters (without the seed), the versions of the protocol and of every shared component
                it runs (`Component`), and the seed (None for a cell that draws no randomness)
    StudyKey    the cell key without the seed: rows with one study key are one study at several seeds

Every field is always present (no "only when set" fields), and `KEY_SCHEMA` is folded into every digest:
bump it once and every old cache entry and stored row is recomputed, never mixed with new ones.
A key can be read as well as hashed: `fields()` is what `plan --why` prints and what rows store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark.devices import Precision
from benchmark.vocab import FeatureKind

KEY_SCHEMA = 2  # 2: one key module (every field always present, dataset content, shared component versions)


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def file_sha256(path: Path) -> str:
    """A file's content as a key field (weights files, label files), read in 1 MB blocks."""
    found = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            found.update(block)
    return found.hexdigest()


def digest(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of `fields`, with the key schema folded in."""
    return hashlib.sha256(canonical_json({"key_schema": KEY_SCHEMA, **fields}).encode()).hexdigest()


@dataclass(eq=False)
class Component:
    """Shared code whose behaviour changes numbers (the linear sweep, the solvers, the scoring functions).

    It lives in the module it versions: bump `version` there when its output changes, and every cell of
    every protocol that declares it (directly or through another component's `uses`) is re-keyed.
    """

    name: str
    version: str
    uses: tuple[Component, ...] = ()

    def versions(self) -> dict[str, str]:
        """Its own version and those of everything it uses, by name."""
        found = {self.name: self.version}
        for component in self.uses:
            found |= component.versions()
        return found


def component_versions(components: Iterable[Component]) -> dict[str, str]:
    found: dict[str, str] = {}
    for component in components:
        found |= component.versions()
    return found


@dataclass(frozen=True)
class FeatureKey:
    """Everything that changes the features of one split."""

    encoder: Mapping[str, Any]
    preprocessing: Mapping[str, Any]
    dataset: Mapping[str, Any]
    split: str
    kind: FeatureKind
    precision: Precision
    code: Mapping[str, str] = field(default_factory=dict)  # component versions of the extraction

    def fields(self) -> dict[str, Any]:
        return {"encoder": dict(self.encoder), "preprocessing": dict(self.preprocessing),
                "dataset": dict(self.dataset), "split": self.split, "kind": str(self.kind),
                "precision": str(self.precision), "code": dict(self.code)}

    @property
    def digest(self) -> str:
        return digest(self.fields())

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> FeatureKey:
        """The key a cache manifest records (its `fields()`)."""
        return cls(**{**fields, "kind": FeatureKind(fields["kind"]), "precision": Precision(fields["precision"])})


@dataclass(frozen=True)
class CellKey:
    """Everything that changes one result: its inputs' keys, what runs on them, and the seed."""

    column: str  # the suite's protocol column (what rows and tables show)
    protocol: str  # the registered protocol behind it
    params: Mapping[str, Any]  # resolved, without the seed
    code: Mapping[str, str]  # protocol and shared component versions
    features: Mapping[str, str]  # split -> FeatureKey digest
    seed: int | None  # None: the cell draws no randomness and selects on no shuffled hold-out

    def fields(self) -> dict[str, Any]:
        return {**self.study_fields(), "seed": self.seed}

    def study_fields(self) -> dict[str, Any]:
        return {"column": self.column, "protocol": self.protocol, "params": dict(self.params),
                "code": dict(self.code), "features": dict(self.features)}

    @property
    def digest(self) -> str:
        return digest(self.fields())

    @property
    def study(self) -> str:
        """The StudyKey digest: this cell at any seed."""
        return digest({"study": self.study_fields()})


def readable(fields: Mapping[str, Any], prefix: str = "") -> list[str]:
    """One `path = value` line per leaf field of a key (what `plan --why` prints)."""
    lines = []
    for name in sorted(fields, key=str):
        value = fields[name]
        lines += (readable(value, f"{prefix}{name}.") if isinstance(value, Mapping) and value
                  else [f"{prefix}{name} = {canonical_json(value)}"])
    return lines


def differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Readable lines naming every leaf field that differs between two key field mappings."""
    lines = []
    for name in sorted(set(old) | set(new), key=str):
        path, a, b = f"{prefix}{name}", old.get(name, "<absent>"), new.get(name, "<absent>")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines += differences(a, b, path + ".")
        elif canonical_json(a) != canonical_json(b):
            lines.append(f"{path}: {canonical_json(a)} -> {canonical_json(b)}")
    return lines


__all__ = ["KEY_SCHEMA", "CellKey", "Component", "FeatureKey", "component_versions", "differences", "digest",
           "readable"]
