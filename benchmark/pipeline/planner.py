"""A run as a plan of typed work items, built before anything runs.

`plan_cells` turns (suite, encoder) into one `Cell` per (dataset, protocol): its protocol (parameters
already validated), the feature keys it reads, its cell key, and its state: PENDING, DONE (the store
holds its result) or SKIPPED (with the reason). Planning reads the results store and changes nothing.
`evaluate`, `extract`, `plan`, torchrun ranks and submitit jobs all consume the same cells.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

from benchmark.cache import FeatureCache
from benchmark.config import Suite, Task
from benchmark.data import dataset_spec
from benchmark.data.label_fractions import Labelled
from benchmark.encoders import Encoder
from benchmark.errors import UserError
from benchmark.identity import CellKey, FeatureKey, component_versions, differences, readable
from benchmark.devices import Precision
from benchmark.pipeline.inputs import (HOLDOUT_RULE, Pairing, feature_keys, has_holdout, pair, pairing_key,
                                      plan_dataset)
from benchmark.pipeline.stability import RERUNS
from benchmark.preprocessing import Preprocessing
from benchmark.protocols import PROTOCOLS, Protocol, make_protocol
from benchmark.protocols.base import skip_reason
from benchmark.results import ResultRow, ResultsStore
from benchmark.vocab import FeatureKind


class CellState(StrEnum):
    PENDING = "pending"
    DONE = "done"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Cell:
    """One (encoder, dataset, protocol) result to produce."""

    pairing: Pairing
    task: Task
    protocol: Protocol
    identity: CellKey
    state: CellState
    reason: str = ""  # why it is skipped
    stored: ResultRow | None = None  # the stored result of a DONE cell
    seed: int | None = None  # the run seed it depends on; None: it depends on none (stored as NULL)

    @property
    def key(self) -> str:
        return self.identity.digest

    @property
    def feature_keys(self) -> dict[str, str]:
        return dict(self.identity.features)

    @property
    def kind(self) -> FeatureKind:
        return self.protocol.input_kind()

    @property
    def label(self) -> str:
        seed = "" if self.seed is None else f" / seed {self.seed}"
        return f"{self.pairing.encoder.label} / {self.task.dataset} / {self.task.protocol}{seed}"

    @property
    def holdout_seed(self) -> int:
        """The seed of the hold-out shuffle its inputs need (0, the reference's, unless it validates)."""
        return self.seed if self.seed is not None and self.protocol.selects_on_val else 0


@dataclass(frozen=True)
class Extraction:
    """One feature extraction that a pending cell needs."""

    pairing: Pairing
    split: str
    kind: FeatureKind
    key: FeatureKey
    done: bool


def cell_key(task: Task, protocol: Protocol, pairing: Pairing, seed: int | None) -> CellKey:
    """The identity of one result (`benchmark.identity.CellKey`). A seed that the run injected into the
    protocol's parameters is the key's `seed` field, not a parameter, so the study key ignores it."""
    params = protocol.params.key_params()
    if injects_seed(task, protocol, seed):
        params.pop("seed")
    if task.stability:  # only when asked: a cell without reruns keeps the key it always had
        params["stability"] = task.stability
    holdout = protocol.selects_on_val and has_holdout(pairing.dataset)
    shared = [HOLDOUT_RULE] * holdout + [RERUNS] * bool(task.stability)
    code = protocol.code_versions() | component_versions(shared)
    return CellKey(task.protocol, task.kind, params, code, feature_keys(pairing, protocol.input_kind()), seed)


def validate_suite(suite: Suite, only: tuple[str, ...] = ()) -> None:
    """Every protocol name and parameter of the suite checked before any work (UserError on a mistake)."""
    columns = {column: entry.get("protocol", column) for column, entry in suite.protocols.items()}
    for protocol in only:
        if protocol not in columns and protocol not in columns.values():
            PROTOCOLS.get(protocol)  # a misspelt name: close matches
            raise UserError(f"--protocol {protocol}: suite {suite.name} has no {protocol} column; its columns: "
                            f"{', '.join(columns)}")
    for name, options in suite.datasets.items():
        dataset_spec(name, options)  # a misspelt dataset fails here, with close matches
        if options.get("train_fraction") is not None:
            Labelled(options["train_fraction"])  # a fraction outside (0, 1] fails here
        Preprocessing().with_overrides(suite.preprocessing_for(name))  # here, not at the first extraction
        for task in suite.tasks(name, only):
            make_protocol(task.kind, task.params)
            Preprocessing().with_overrides({**suite.preprocessing_for(name), **task.preprocessing})
            if len(suite.seeds) > 1 and "seed" in task.params:
                raise UserError(f"suite {suite.name}: {task.protocol} on {name} fixes `seed: {task.params['seed']}` "
                                f"but the run has seeds {list(suite.seeds)}; remove `seed:` from its protocol entry "
                                f"or override (each run seed sets it)")


def run_seeds(suite: Suite, task: Task, pairing: Pairing) -> tuple[int | None, ...]:
    """The seeds a task's result depends on: every run seed for a protocol with a `seed` parameter (unless
    the suite fixes it) or one validating on a seeded hold-out; else (None,), one result for all seeds."""
    protocol = PROTOCOLS.get(task.kind)
    takes = protocol.takes_seed() and "seed" not in task.params
    return suite.seeds if takes or (protocol.selects_on_val and has_holdout(pairing.dataset)) else (None,)


def plan_cells(suite: Suite, encoder: Encoder, spec_text: str, store: ResultsStore, data_root: Path | None,
               only: tuple[str, ...] = (), recompute: bool = False, precision: Precision = Precision.FP32
               ) -> tuple[list[Cell], list[str]]:
    """Every cell of the suite for one encoder, dataset by dataset, in suite order; and one failure
    line per dataset that cannot be found (its cells are left out, the others still run)."""
    cells, failures = [], []
    for name in suite.datasets:
        try:
            # resolved once for all its columns (and, for a shift test set, the dataset its heads are fitted on)
            dataset = plan_dataset(name, suite.datasets[name], data_root, suite.datasets)
            for task in suite.tasks(name, only):
                pairing = pair(encoder, spec_text, suite, name, data_root, precision, task.preprocessing, dataset)
                cells += [plan_cell(pairing, task, seed, store, recompute) for seed in run_seeds(suite, task, pairing)]
        except UserError as err:
            failures.append(f"{encoder.label} / {name}: {err}")
    return cells, failures


def injects_seed(task: Task, protocol: Protocol | type[Protocol], seed: int | None) -> bool:
    """Whether the run seed becomes the protocol's `seed` parameter (one the suite fixes stays fixed)."""
    return seed is not None and protocol.takes_seed() and "seed" not in task.params


def plan_cell(pairing: Pairing, task: Task, seed: int | None, store: ResultsStore, recompute: bool) -> Cell:
    seeded = {"seed": seed} if injects_seed(task, PROTOCOLS.get(task.kind), seed) else {}
    protocol = make_protocol(task.kind, task.params | seeded)
    identity = cell_key(task, protocol, pairing, seed)
    cell = Cell(pairing, task, protocol, identity, CellState.PENDING, seed=seed)
    stored = None if recompute else store.find(identity.digest)
    if stored is not None:
        return replace(cell, state=CellState.DONE, stored=stored)
    spec = pairing.dataset.spec
    reason = skip_reason(protocol, pairing.encoder.capabilities, spec.task, pairing.encoder.label, spec.name,
                         bool(spec.class_subset))
    return replace(cell, state=CellState.SKIPPED, reason=reason) if reason else cell


def explain(cell: Cell, store: ResultsStore, cache: FeatureCache) -> list[str]:
    """`plan --why`: the cell's key, field by field, and how it differs from the newest stored row of the
    same encoder, dataset and column (the reason that row is not reused), down to the feature key fields
    where the old features are still in the cache."""
    lines = [f"{cell.label}: cell key {cell.key[:12]} ({cell.state})"]
    lines += [f"  {line}" for line in readable(cell.identity.fields())]
    stored = store.newest(cell.pairing.encoder.label, cell.task.dataset, cell.task.protocol)
    if stored is None:
        return lines + ["  no stored row of this encoder, dataset and column"]
    if stored.cell_key == cell.key:
        return lines + [f"  the newest stored row has this key: it is reused (value {stored.value:.2f})"]
    if not stored.key_fields:
        return lines + [f"  the newest stored row (key {stored.cell_key[:12]}) was written before keys were stored "
                        f"(results store version 1): it is never reused"]
    changed = differences(stored.key_fields, cell.identity.fields())
    lines += [f"  the newest stored row (key {stored.cell_key[:12]}) differs in:"] + [f"    {c}" for c in changed]
    return lines + feature_differences(cell, stored.key_fields.get("features", {}), cache)


def feature_differences(cell: Cell, old: dict[str, str], cache: FeatureCache) -> list[str]:
    """For each split whose features changed, the feature key fields that changed."""
    lines = []
    for split, digest in cell.identity.features.items():
        if old.get(split, digest) == digest:
            continue
        recorded = cache.recorded_fields(old[split])
        new = pairing_key(cell.pairing, split, cell.kind).fields()
        lines += ([f"  {split} features: {c}" for c in differences(recorded, new)] if recorded is not None
                  else [f"  {split} features: the old entry is no longer in the cache to compare"])
    return lines


def needed_extractions(cells: list[Cell], cache: FeatureCache) -> list[Extraction]:
    """The feature extractions (each split of each kind) that pending cells read, in cell order."""
    seen: dict[str, Extraction] = {}
    for cell in cells:
        if cell.state != CellState.PENDING or cell.kind == FeatureKind.MODEL:
            continue
        for split in cell.pairing.dataset.splits:
            key = pairing_key(cell.pairing, split, cell.kind)
            seen.setdefault(key.digest, Extraction(cell.pairing, split, cell.kind, key, cache.contains(key)))
    return list(seen.values())


def group_by_pairing(cells: list[Cell]) -> list[list[Cell]]:
    """Cells grouped by (encoder, dataset, preprocessing), in order: each group shares its loaded inputs."""
    groups: dict[tuple[str, str, Preprocessing], list[Cell]] = {}
    for cell in cells:
        groups.setdefault((cell.pairing.encoder.label, cell.task.dataset, cell.pairing.preprocessing), []).append(cell)
    return list(groups.values())
