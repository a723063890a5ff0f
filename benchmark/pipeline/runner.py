"""The evaluation loop: plan the cells (`benchmark.pipeline.planner`), then run the pending ones.

Each finished (encoder, dataset, protocol) cell is written to the results store at once, and a
user-fixable error in one cell is reported and skipped, so a failure never costs finished work.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmark import distributed
from benchmark.cache import FeatureCache
from benchmark.config import Suite
from benchmark.data import fingerprint
from benchmark.devices import Precision, check_device
from benchmark.encoders import Encoder, ModelSpec, load_encoder
from benchmark.errors import UserError
from benchmark.pipeline.inputs import ExtractOptions, Pairing, TaskInputs, cached_features, feature_task, model_task
from benchmark.pipeline.planner import Cell, CellState, explain as explain_cell, group_by_pairing, needed_extractions, plan_cells, validate_suite
from benchmark.pipeline.estimate import model_costs
from benchmark.pipeline.stability import rerun_values, stability_details
from benchmark.protocols import Features, ProtocolResult
from benchmark.results import DEFAULT_RESULTS, ResultRow, ResultsStore, code_revision
from benchmark.series import SeriesMember
from benchmark.vocab import FeatureKind, ValSplit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    cache_dir: Path | None = None
    results_path: Path = DEFAULT_RESULTS
    data_root: Path | None = None
    batch_size: int = 64
    workers: int | None = None  # DataLoader workers; None: see default_workers
    device: str = "cpu"
    protocols: tuple[str, ...] = ()
    recompute: bool = False  # rerun protocols even when the store already holds the cell's result
    precision: Precision = Precision.FP32  # of feature extraction (part of the cache key and of every row)
    seeds: tuple[int, ...] = ()  # run every seeded protocol once per seed (empty: the suite's `seeds`)

    @property
    def extraction(self) -> ExtractOptions:
        workers = default_workers(self.device) if self.workers is None else self.workers
        return ExtractOptions(self.batch_size, workers, self.device)


def default_workers(device: str) -> int:
    """Decode and resize in every available CPU's worker process when a GPU runs the model. On a CPU run
    the workers would take cores from the forward pass: measured with perf/gpu.py on 2 AMD EPYC cores,
    ResNet-18 at 64 px extracted 970 img/s with no worker and 665 img/s with 2."""
    if not device.startswith("cuda"):
        return 0
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # under torchrun the node's CPUs are shared
    return max(1, len(os.sched_getaffinity(0)) // ranks_here)


@dataclass
class RunReport:
    rows: list[ResultRow] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    cache_hits: int = 0
    cache_misses: int = 0
    reused: int = 0
    skipped: list[str] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)  # labels of the encoders this run evaluated
    seconds: float = 0.0


@dataclass(frozen=True)
class PlannedTask:
    """One line of `plan`: a feature extraction or a result cell, and whether its output exists."""

    stage: str  # "extract" or "evaluate"
    encoder: str
    dataset: str
    what: str  # "split kind" for extraction, the protocol for a result cell
    key: str
    done: bool


def dataset_revision(cell: Cell) -> dict[str, str]:
    revision = cell.pairing.dataset.spec.revision
    return {"dataset_revision": revision} if revision else {}


def result_row(suite: Suite, cell: Cell, result: ProtocolResult, data: TaskInputs, val_split: ValSplit,
               seconds: float) -> ResultRow:
    encoder = cell.pairing.encoder
    return ResultRow(
        suite=suite.name, encoder=encoder.label, encoder_spec=cell.pairing.spec_text,
        encoder_identity=encoder.identity, encoder_facts=encoder.facts, random_init=encoder.random_init, dataset=cell.task.dataset,
        protocol=cell.task.protocol, protocol_kind=cell.task.kind, protocol_version=cell.protocol.version,
        metric=result.metric, value=result.value,
        params=vars(cell.protocol.params), chosen=result.chosen,
        details=result.details | dataset_revision(cell) | {"val_split": val_split},
        per_example=result.per_example.to_json(), preprocessing=cell.pairing.preprocessing.key_fields(),
        split_sizes=data.split_sizes, cache_keys=cell.feature_keys, seed=cell.seed, seconds=seconds,
        cell_key=cell.key, study_key=cell.identity.study, key_fields=cell.identity.fields(), code_revision=code_revision(), precision=cell.pairing.precision, device=data.device)


def planned_what(cell: Cell, suite: Suite) -> str:
    """A result cell in `plan`: its protocol column, and its seed when the run has several."""
    return " ".join(filter(None, (cell.task.protocol, suite.seed_label(cell.seed))))


class Evaluator:
    """Runs one suite for many encoders; owns the cache, the store and the run's counters."""

    def __init__(self, suite: Suite, options: RunOptions, echo: Callable[[str], None] = print):
        suite = suite.with_seeds(options.seeds)
        fingerprint.forget()  # a run sees the data as they are now (each local root is walked once)
        validate_suite(suite, options.protocols)  # unknown names or bad parameters fail before any work
        check_device(distributed.rank_device(options.device))
        self.suite, self.options = suite, dataclasses.replace(options, device=distributed.rank_device(options.device))
        self.dist = distributed.init_from_env(options.device)
        self.echo = echo if self.dist.is_main else (lambda _: None)  # rank 0 speaks for the group
        self.cache = FeatureCache(options.cache_dir)
        self.store = ResultsStore(options.results_path)
        self.report = RunReport()

    def run(self, models: list[str | Encoder | SeriesMember]) -> RunReport:
        """Every cell of every model: a model spec, or an `Encoder` already built (an in-memory model)."""
        start = time.perf_counter()
        for model in models:
            for group in group_by_pairing(self.planned(model)):
                self.run_group(group)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def extract(self, model_spec: str) -> RunReport:
        """Only the feature extractions that the suite's pending cells need (a cluster job's first stage)."""
        needed = {(e.pairing.preprocessing, e.pairing.dataset.spec.name, e.kind): e.pairing
                  for e in needed_extractions(self.planned(model_spec), self.cache)}
        for (_, name, kind), pairing in needed.items():
            self.guarded(f"{pairing.encoder.label} / {name}", self.features, pairing, kind)
        return self.report

    def plan(self, model_specs: list[str]) -> list[PlannedTask]:
        """The run's task graph without running it: every needed extraction and result cell, each
        marked done when its output is already in the cache or the results store."""
        tasks = []
        for text in model_specs:
            cells, _ = plan_cells(self.suite, load_encoder(ModelSpec.parse(text)), text, self.store,
                                  self.options.data_root, self.options.protocols, self.options.recompute,
                                  self.options.precision)
            for group in group_by_pairing(cells):
                tasks += [PlannedTask("extract", e.pairing.encoder.label, e.pairing.dataset.spec.name,
                                      f"{e.split} {e.kind}", e.key.digest, e.done)
                          for e in needed_extractions(group, self.cache)]
                tasks += [PlannedTask("evaluate", c.pairing.encoder.label, c.task.dataset, planned_what(c, self.suite),
                                      c.key, c.state == CellState.DONE) for c in group if c.state != CellState.SKIPPED]
        return tasks

    def planned(self, model: str | Encoder | SeriesMember) -> list[Cell]:
        """The encoder's cells; under torchrun rank 0's view of which are done wins (one broadcast)."""
        if isinstance(model, SeriesMember):  # a checkpoint of a series, loaded when its turn comes
            encoder, spec = model.load(), model.spec
        elif isinstance(model, Encoder):
            encoder, spec = model, model.name
        else:
            encoder, spec = load_encoder(parsed := ModelSpec.parse(model)), str(parsed)
        self.report.encoders.append(encoder.label)
        for line in encoder.load_report:
            self.echo(f"[{encoder.label}] {line}")
        cells, failures = plan_cells(self.suite, encoder, spec, self.store,
                                     self.options.data_root, self.options.protocols, self.options.recompute,
                                     self.options.precision)
        for failure in failures:
            self.fail(failure)
        states = distributed.broadcast_from_main([cell.state for cell in cells] if self.dist.is_main else None)
        cells = [dataclasses.replace(cell, state=state) for cell, state in zip(cells, states)]
        record_model_costs(encoder, cells, self.dist.is_main)
        return cells

    def run_group(self, cells: list[Cell]) -> None:
        """One (encoder, dataset): record reused and skipped cells, then run the pending ones; each kind
        of input is loaded once, and a load that failed is reported for each of its cells."""
        for cell in cells:
            self.account(cell)
        pending = [cell for cell in cells if cell.state == CellState.PENDING]
        if not pending:
            self.echo(f"[{cells[0].pairing.encoder.label}] {cells[0].task.dataset}: every cell already done or "
                      f"skipped (--recompute reruns them)")
            return
        inputs: dict[Any, Any] = {}
        for cell in pending:
            self.guarded(cell.label, self.run_cell, cell, inputs)

    def account(self, cell: Cell) -> None:
        if cell.state == CellState.DONE and cell.stored is not None:
            self.report.reused += 1
            self.report.rows.append(cell.stored)
        elif cell.state == CellState.SKIPPED and self.dist.is_main and (
                self.options.recompute or not self.store.is_skipped(cell.key)):
            label = cell.pairing.encoder.label
            self.store.add_skip(self.suite.name, label, cell.task.dataset, cell.task.protocol, cell.reason, cell.key)
            self.report.skipped.append(f"{cell.label}: {cell.reason}")
            self.echo(f"[{label}] {cell.task.dataset} {cell.task.protocol}: skipped ({cell.reason})")

    def run_cell(self, cell: Cell, inputs: dict[Any, Any]) -> None:
        """The group's inputs are assembled once: features per kind, then task inputs per (kind, hold-out seed)."""
        def task() -> tuple[TaskInputs, ValSplit]:
            if cell.kind == FeatureKind.MODEL:
                return model_task(cell.pairing, self.options.device, cell.holdout_seed, self.options.extraction.workers)
            splits = once(inputs, cell.kind, lambda: self.features(cell.pairing, cell.kind)[0])
            return feature_task(splits, cell.pairing, self.options.device, cell.holdout_seed)

        data, val_split = once(inputs, (cell.kind, cell.holdout_seed), task)
        if not self.dist.is_main and cell.kind != FeatureKind.MODEL:
            return  # this rank helped extract; rank 0 runs the feature protocols
        start = time.perf_counter()
        result = cell.protocol.evaluate(data)  # under torchrun, every rank takes part (fine-tuning runs DDP)
        if cell.task.stability:
            reruns = rerun_values(cell.protocol, data, cell.task.stability)
            result.details = result.details | stability_details(result.value, reruns)
        if not math.isfinite(result.value):  # e.g. alpha-ReQ of constant features: a reason, not a number
            cell = dataclasses.replace(cell, state=CellState.SKIPPED,
                                       reason=f"{cell.task.protocol} is not defined on these features ({result.value})")
            self.account(cell)
        elif self.dist.is_main:
            self.store_row(result_row(self.suite, cell, result, data, val_split, time.perf_counter() - start),
                           cell.seed)

    def store_row(self, row: ResultRow, seed: int | None = None) -> None:
        self.store.add(row)
        self.report.rows.append(row)
        what = ", ".join(filter(None, (row.metric, self.suite.seed_label(seed), f"{row.seconds:.1f}s")))
        self.echo(f"[{row.encoder}] {row.dataset} {row.protocol}: {row.value:.2f} ({what})")

    def features(self, pairing: Pairing, kind: FeatureKind = FeatureKind.POOLED
                 ) -> tuple[dict[str, Features], dict[str, str]]:
        start = time.perf_counter()
        splits, keys, hits = cached_features(self.cache, pairing, self.options.extraction, kind=kind)
        if hits == 0 and kind == FeatureKind.POOLED:  # extracted here: the run's own images/s, decoding included
            record_speed(pairing.encoder, sum(len(f) for f in splits.values()), time.perf_counter() - start)
        self.report.cache_hits += hits
        self.report.cache_misses += len(splits) - hits
        source = "from cache" if hits == len(splits) else f"extracted {len(splits) - hits} split(s)"
        sizes = ", ".join(f"{split} {len(f)}" for split, f in splits.items())
        self.echo(f"[{pairing.encoder.label}] {pairing.dataset.spec.name}: {kind} features {source} ({sizes})")
        return splits, keys

    def guarded(self, label: str, work: Callable[..., Any], *args: Any) -> None:
        """Run one piece of work; a failure is reported and the run goes on, so finished cells are never lost."""
        try:
            work(*args)
        except UserError as err:
            self.fail(f"{label}: {err}")
        except Exception as err:  # one broken cell must not end a study of hours; it is reported instead
            log.debug("traceback of the failed cell %s", label, exc_info=True)
            self.fail(f"{label}: {type(err).__name__}: {err} (set TRANSFERBENCH_LOG=DEBUG for the traceback)")

    def fail(self, message: str) -> None:
        self.report.failures.append(message)
        self.echo(f"FAILED {message}")


def record_model_costs(encoder: Encoder, cells: list[Cell], is_main: bool) -> None:
    """The cost columns that need no timing (parameters, GFLOPs at the run's input size) into the facts that
    the encoder's new rows record (on rank 0, which writes them); a copy of the facts, so a registry's
    shared dict is never changed."""
    pending = [cell for cell in cells if cell.state == CellState.PENDING]
    if not pending or not is_main:
        return
    try:
        encoder.facts = {**encoder.facts, **model_costs(encoder, pending[0].pairing.preprocessing.input_size)}
    except Exception:  # noqa: BLE001 - a cost column is never worth a failed run; the cells will say what is wrong
        log.debug("no cost columns for %s", encoder.label, exc_info=True)


def record_speed(encoder: Encoder, images: int, seconds: float) -> None:
    encoder.facts = {**encoder.facts, "extract_images_per_s": round(images / max(seconds, 1e-9), 1)}


def explain(evaluator: Evaluator, text: str, dataset: str, protocol: str) -> list[str]:
    """`plan --why`: a cell's key fields against the newest stored row's (why it is or is not reused)."""
    options = evaluator.options
    cells, failures = plan_cells(evaluator.suite, load_encoder(ModelSpec.parse(text)), text, evaluator.store,
                                 options.data_root, (protocol,), options.recompute, options.precision)
    found = [cell for cell in cells if cell.task.dataset == dataset and cell.task.protocol == protocol]
    if not found:
        raise UserError(f"suite {evaluator.suite.name} has no cell {dataset} / {protocol}"
                        + (f" ({failures[0]})" if failures else f"; datasets: {', '.join(evaluator.suite.datasets)}"))
    return [line for cell in found for line in explain_cell(cell, evaluator.store, evaluator.cache)]


def once(memo: dict[Any, Any], key: Any, compute: Callable[[], Any]) -> Any:
    """`compute()` the first time `key` is asked for; its result, or the error it raised, every time."""
    if key not in memo:
        try:
            memo[key] = compute()
        except Exception as err:
            memo[key] = err
    if isinstance(memo[key], Exception):
        raise memo[key]
    return memo[key]


def evaluate(models: list[str | Encoder | SeriesMember], suite: Suite, options: RunOptions = RunOptions(),
             echo: Callable[[str], None] = print) -> RunReport:
    """Library entry point: evaluate every model (a spec or a built Encoder) on every suite cell; returns
    the run report."""
    return Evaluator(suite, options, echo).run(models)


__all__ = ["Evaluator", "RunOptions", "RunReport", "evaluate"]
