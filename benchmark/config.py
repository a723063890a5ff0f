"""Suites: YAML files naming datasets x protocols, with defaults, per-entry overrides and `include:`.

    name: offline
    version: 1
    include: other.yaml            # optional; this file's keys override the included file's
    seeds: [0, 1, 2]               # optional (default [0]; `seed: 3` means [3]): see `Suite.seeds`
    preprocessing: {input_size: 64}   # applied over every encoder's own preprocessing
    protocols: {linear: {solver: fast}, knn: {}}
    datasets: {mnist5k: {}, fashion_mnist: {train_subset: 10000, preprocessing: {input_size: 32}}}
    overrides:                     # optional, per (dataset, protocol)
      - {dataset: mnist5k, protocol: knn, params: {k: [10, 20]}}
      - {dataset: imagenet, protocol: linear, params: {protocol: linear_sgd, epochs: 100}}  # another protocol
                                   # fills this one cell of the column, with only the parameters given here

A protocol entry's key is the column it fills. Two reserved keys let one protocol fill several columns
and read the images differently from the dataset's other protocols:

    protocols:
      fewshot: {shots: 20, preprocessing: {resize_size: 257, resize_mode: square}}
      fewshot_50shot: {protocol: fewshot, shots: 50}   # the registered protocol to run
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from benchmark.errors import MissingDataError, UserError
from benchmark.registry import unknown_name_message

SUITES_DIR = Path(__file__).resolve().parent / "suites"  # the top-level suites/ (a link), shipped in the wheel
SUITE_KEYS = ("name", "version", "description", "include", "seed", "seeds", "preprocessing", "protocols", "datasets",
              "overrides", "pretrain")
OVERRIDE_KEYS = ("dataset", "protocol", "params")
PROTOCOL_ENTRY_KEYS = ("protocol", "preprocessing", "stability")  # the rest of a protocol entry are its parameters
MAX_STABILITY_RUNS = 100
DATASET_KEYS = ("root", "train_subset", "test_subset", "train_fraction", "train_list", "source", "preprocessing",
                "protocols")  # + a source's fields


@dataclass(frozen=True)
class Task:
    """One (dataset, protocol column) of a suite: `protocol` is the column's name (what rows and tables
    show), `kind` the registered protocol that fills it, `preprocessing` its overrides over the dataset's."""

    dataset: str
    protocol: str
    params: dict[str, Any]
    kind: str = ""
    preprocessing: dict[str, Any] = field(default_factory=dict)
    stability: int = 0  # reruns under rounding-level perturbations (benchmark.pipeline.stability)

    def __post_init__(self) -> None:
        if not self.kind:
            object.__setattr__(self, "kind", self.protocol)
        if isinstance(self.stability, bool) or not isinstance(self.stability, int) or not (
                0 <= self.stability <= MAX_STABILITY_RUNS):
            raise UserError(f"{self.protocol} on {self.dataset}: stability must be a number of reruns from 0 to "
                            f"{MAX_STABILITY_RUNS}, got {self.stability!r}")


@dataclass(frozen=True)
class Suite:
    """A study's datasets x protocols. `seeds`: every seeded protocol (one with a `seed` parameter, or one
    that selects hyperparameters on the hold-out validation split, whose shuffle takes the seed) runs once
    per seed; a result that depends on no seed is computed once and recorded as seed 0. Seed 0 is the
    reference's rule (its hold-out shuffle is np.random.seed(0))."""

    name: str
    version: int = 1
    description: str = ""
    seeds: tuple[int, ...] = (0,)
    preprocessing: dict[str, Any] = field(default_factory=dict)
    protocols: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: tuple[dict[str, Any], ...] = ()
    source: str = ""
    pretrain: dict[str, Any] = field(default_factory=dict)  # the `reproduce` study (benchmark.study)

    def tasks(self, dataset: str, only: tuple[str, ...] = ()) -> list[Task]:
        """The protocol tasks for one dataset, each with its defaults plus any override."""
        tasks = []
        restricted = self.datasets.get(dataset, {}).get("protocols")  # a dataset may name its protocols
        for protocol, entry in self.protocols.items():
            entry = dict(entry or {})
            kind, preprocessing = entry.pop("protocol", protocol), entry.pop("preprocessing", {}) or {}
            if (only and protocol not in only and kind not in only) or (restricted and protocol not in restricted):
                continue
            for override in self.overrides:
                if override["dataset"] == dataset and override["protocol"] == protocol:
                    params = dict(override.get("params") or {})
                    if "protocol" in params:  # this cell of the column runs another protocol: its own params only
                        kind, entry = params.pop("protocol"), params
                    else:
                        entry.update(params)
            stability = entry.pop("stability", 0)
            tasks.append(Task(dataset, protocol, entry, kind, preprocessing, stability))
        return tasks

    def with_seeds(self, seeds: tuple[int, ...]) -> Suite:
        """The suite run with these seeds instead of its own (none given: its own)."""
        return replace(self, seeds=seeds) if seeds else self

    def seed_label(self, seed: int | None) -> str:
        """"seed N" when the run has several seeds and a cell depends on one, else ""."""
        return f"seed {seed}" if seed is not None and len(self.seeds) > 1 else ""

    def preprocessing_for(self, dataset: str) -> dict[str, Any]:
        """Suite-wide preprocessing overrides, then the dataset entry's own `preprocessing:`."""
        return {**self.preprocessing, **(self.datasets.get(dataset, {}).get("preprocessing") or {})}

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "seeds": list(self.seeds),
                "preprocessing": self.preprocessing, "protocols": self.protocols, "datasets": self.datasets,
                "overrides": list(self.overrides)}


def suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise MissingDataError(f"suite file {path} does not exist")
        return path
    candidate = SUITES_DIR / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise UserError(unknown_name_message("suite", name_or_path, available_suites()))
    return candidate


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The YAML mapping with its `include:` chain resolved (relative to the including file)."""
    if path.resolve() in seen:
        raise UserError(f"suite include cycle: {' -> '.join(map(str, (*seen, path)))}")
    if not path.is_file():
        raise MissingDataError(f"suite file {path} does not exist" + (f" (included from {seen[-1]})" if seen else ""))
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise UserError(f"suite {path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise UserError(f"suite {path} must be a mapping of keys {SUITE_KEYS}")
    include = data.pop("include", None)
    if include is not None and (not isinstance(include, str) or "\x00" in include):  # pathlib rejects NUL bytes
        raise UserError(f"suite {path}: include must be a file name, got {include!r}")
    if include:
        base = read_yaml((path.parent / include).resolve(), (*seen, path.resolve()))
        if {"seed", "seeds"} & data.keys():  # either spelling here replaces the included file's
            base = {k: v for k, v in base.items() if k not in ("seed", "seeds")}
        data = merge(base, data)
    return data


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        merged[key] = merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


def check_keys(where: str, given: dict[str, Any], valid: tuple[str, ...]) -> None:
    for key in given:
        if key not in valid:
            raise UserError(f"{where}: " + unknown_name_message("key", str(key), list(valid)))


def mapping(where: str, value: Any) -> dict[str, Any]:
    """A YAML mapping (None counts as empty); anything else is a user error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where} must be a mapping (key: value), got {type(value).__name__}: {str(value)[:60]!r}")
    return {str(k): v for k, v in value.items()}


def integer(where: str, value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise UserError(f"{where} must be an integer, got {value!r}") from None


def seed_list(where: str, value: Any) -> tuple[int, ...]:
    """Distinct non-negative integer seeds, in the order given."""
    values = value if isinstance(value, (list, tuple)) else [value]
    seeds = tuple(integer(where, v) for v in values)
    if not seeds or min(seeds) < 0 or len(set(seeds)) < len(seeds):
        raise UserError(f"{where} must be distinct integers >= 0, e.g. [0, 1, 2]; got {value!r}")
    return seeds


def suite_seeds(path: Path, data: dict[str, Any]) -> tuple[int, ...]:
    if "seed" in data and "seeds" in data:
        raise UserError(f"suite {path}: give `seeds: [...]` or `seed: N`, not both")
    return seed_list(f"suite {path} seeds", data.get("seeds", data.get("seed", 0)))


def check_structure(path: Path, datasets: dict[str, dict[str, Any]], protocols: dict[str, dict[str, Any]],
                    overrides: tuple[dict[str, Any], ...]) -> None:
    """A suite that would run nothing, or names a dataset or column it does not have, is one message."""
    if not datasets or not protocols:
        missing = " and ".join(k for k, v in (("datasets:", datasets), ("protocols:", protocols)) if not v)
        raise UserError(f"suite {path} has no {missing}; a suite crosses datasets with protocols, e.g. "
                        f"`datasets: {{digits: {{}}}}` and `protocols: {{knn: {{}}}}`")
    for name, options in datasets.items():
        for column in options.get("protocols") or []:
            if column not in protocols:
                raise UserError(f"suite {path} dataset {name!r} protocols: " +
                                unknown_name_message("protocol column", str(column), list(protocols)))
    for override in overrides:
        if override.get("dataset") not in datasets:
            raise UserError(f"suite {path} override: " +
                            unknown_name_message("dataset", str(override.get("dataset")), list(datasets)))
        if override.get("protocol") not in protocols:
            raise UserError(f"suite {path} override for {override['dataset']}: " +
                            unknown_name_message("protocol column", str(override.get("protocol")), list(protocols)))


def load_suite(name_or_path: str) -> Suite:
    path = suite_path(name_or_path)
    data = read_yaml(path)
    check_keys(f"suite {path}", data, SUITE_KEYS)
    overrides = data.get("overrides") or []
    if not isinstance(overrides, list):
        raise UserError(f"suite {path}: overrides must be a list of {{dataset, protocol, params}} mappings")
    overrides = tuple(mapping(f"suite {path} override", o) for o in overrides)
    for override in overrides:
        check_keys(f"suite {path} override", override, OVERRIDE_KEYS)
        override["params"] = mapping(f"suite {path} override params", override.get("params"))
    datasets = {name: mapping(f"suite {path} dataset {name!r}", options)
                for name, options in mapping(f"suite {path} datasets", data.get("datasets")).items()}
    for name, options in datasets.items():
        if "source" not in options:
            check_keys(f"suite {path} dataset {name!r}", options, DATASET_KEYS)
        mapping(f"suite {path} dataset {name!r} preprocessing", options.get("preprocessing"))
        for key in ("train_subset", "test_subset"):
            if options.get(key) is not None and integer(f"suite {path} dataset {name!r} {key}", options[key]) < 1:
                raise UserError(f"suite {path} dataset {name!r}: {key} must be a positive number of images")
        if not isinstance(options.get("protocols") or [], list):
            raise UserError(f"suite {path} dataset {name!r}: protocols must be a list of protocol names")
    protocols = {name: mapping(f"suite {path} protocol {name!r}", params)
                 for name, params in mapping(f"suite {path} protocols", data.get("protocols")).items()}
    for name, entry in protocols.items():
        if not isinstance(entry.get("protocol", name), str):
            raise UserError(f"suite {path} protocol {name!r}: `protocol:` names a registered protocol, got "
                            f"{entry['protocol']!r}")
        mapping(f"suite {path} protocol {name!r} preprocessing", entry.get("preprocessing"))
    check_structure(path, datasets, protocols, overrides)
    return Suite(name=str(data.get("name", path.stem)), version=integer(f"suite {path} version", data.get("version", 1)),
                 description=str(data.get("description", "")), seeds=suite_seeds(path, data),
                 preprocessing=mapping(f"suite {path} preprocessing", data.get("preprocessing")),
                 protocols=protocols, datasets=datasets, overrides=overrides, source=str(path),
                 pretrain=mapping(f"suite {path} pretrain", data.get("pretrain")))
