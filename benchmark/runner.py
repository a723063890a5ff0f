"""The evaluation loop: encoders x suite datasets -> cached features -> protocols -> result rows.

Each finished (encoder, dataset, protocol) cell is written to the results store at once, and a
user-fixable error in one cell is reported and skipped, so a failure never costs finished work.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark import distributed
from benchmark.cache import CacheKey, FeatureCache
from benchmark.config import Suite, Task
from benchmark.data import SUITE_OPTIONS, DatasetSpec, ImageSplit, dataset_spec, load_split, resolve_root
from benchmark.data.splits import holdout_split
from benchmark.encoders import Encoder, ModelSpec, load_encoder
from benchmark.errors import UserError
from benchmark.extraction import extract_features
from benchmark.preprocessing import Preprocessing
from benchmark.protocols import PROTOCOLS, Features, Protocol, TaskData, make_protocol
from benchmark.protocols.base import skip_reason
from benchmark.results import DEFAULT_RESULTS, ResultRow, ResultsStore

log = logging.getLogger(__name__)
EXTRACTION_VERSION = 1  # bump when extraction changes the features it writes
HOLDOUT_FRACTION = 0.2


@dataclass(frozen=True)
class RunOptions:
    cache_dir: Path | None = None
    results_path: Path = DEFAULT_RESULTS
    data_root: Path | None = None
    batch_size: int = 64
    workers: int = 0
    device: str = "cpu"
    protocols: tuple[str, ...] = ()
    recompute: bool = False  # rerun protocols even when the store already holds the cell's result


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
class DatasetPlan:
    """A suite dataset resolved: its spec, root, options and cache identity."""

    spec: DatasetSpec
    root: Path | None
    train_subset: int | None
    identity: dict[str, Any]


def plan_dataset(name: str, options: dict[str, Any], data_root: Path | None) -> DatasetPlan:
    spec = dataset_spec(name, options)
    root = resolve_root(spec, options.get("root"), data_root)
    identity = {"name": name, "version": spec.version, "root": str(root.resolve()) if root else None,
                "train_subset": options.get("train_subset"),
                "source": {k: v for k, v in options.items() if k not in SUITE_OPTIONS}}
    return DatasetPlan(spec, root, options.get("train_subset"), identity)


def cell_key(task: Task, protocol_version: str, params: dict[str, Any], feature_keys: dict[str, str],
             seed: int) -> str:
    """Identity of one result: the features it reads (their cache keys cover encoder, weights,
    preprocessing, dataset and split), the protocol, its version and resolved parameters, the seed."""
    return CacheKey({"protocol": task.protocol, "version": protocol_version, "params": params,
                     "features": feature_keys, "seed": seed}).digest


def feature_key(encoder: Encoder, preprocessing: Preprocessing, plan: DatasetPlan, split: str,
                kind: str = "pooled") -> CacheKey:
    return CacheKey({"encoder": encoder.identity, "preprocessing": preprocessing.as_dict(), "dataset": plan.identity,
                     "split": split, "kind": kind, "extraction_version": EXTRACTION_VERSION})


def cached_features(cache: FeatureCache, encoder: Encoder, preprocessing: Preprocessing, plan: DatasetPlan,
                    options: RunOptions, only: tuple[str, ...] = (), kind: str = "pooled"
                    ) -> tuple[dict[str, Features], dict[str, str], int]:
    """Features of the dataset's splits (or `only` these), from the cache or freshly extracted:
    (splits, keys, hits). `kind` is "pooled" (N, D) or "dense" (N, C, h, w)."""
    splits, keys, hits = {}, {}, 0
    for split in only or plan.spec.splits:
        key = feature_key(encoder, preprocessing, plan, split, kind)
        compute = partial(extract_split, encoder, preprocessing, plan, split, options, kind)
        if distributed.current().enabled:
            arrays, hit = sharded_get_or_compute(cache, key, compute)
        else:
            arrays, hit = cache.get_or_compute(key, compute)
        hits += hit
        splits[split], keys[split] = Features(arrays["features"], arrays["labels"]), key.digest
    return splits, keys, hits


def sharded_get_or_compute(cache: FeatureCache, key: CacheKey, compute: Callable[..., dict[str, np.ndarray]]
                           ) -> tuple[dict[str, np.ndarray], bool]:
    """Under torchrun: each rank extracts and writes its own shard, then every rank reads the joined
    shards. Rank 0 decides whether the entry exists, so all ranks reach the same barriers."""
    info = distributed.current()
    hit = distributed.broadcast_from_main(cache.load(key) is not None)
    if not hit:
        cache.save_shard(key, info.rank, info.world_size, compute(shard=(info.rank, info.world_size)))
        distributed.barrier()
    arrays = cache.load(key)
    if arrays is None:
        raise UserError(f"the feature shards of cache entry {key.digest[:12]} are incomplete; every rank must see "
                        f"the same --cache-dir (a shared filesystem path)")
    return arrays, hit


def extract_split(encoder: Encoder, preprocessing: Preprocessing, plan: DatasetPlan, split: str,
                  options: RunOptions, kind: str = "pooled", shard: tuple[int, int] | None = None
                  ) -> dict[str, np.ndarray]:
    """Features and labels of one split (of one rank's share of it, with dataset positions in
    "index", when `shard` is given)."""
    images = load_split(plan.spec, split, plan.root, plan.train_subset)
    extracted = extract_features(encoder, images, preprocessing, batch_size=options.batch_size,
                                 workers=options.workers, device=options.device, kind=kind, shard=shard,
                                 desc=f"{encoder.label} {plan.spec.name}/{split} {kind}")
    labels = images.labels[extracted.kept]
    if plan.spec.task == "segmentation":  # masks follow the images' resize and crop
        labels = transform_masks(labels, preprocessing)
    arrays = {"features": extracted.features, "labels": labels}
    return arrays | {"index": extracted.kept} if shard else arrays


def transform_masks(masks: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    transform = preprocessing.mask_transform()
    return np.stack([transform(torch.from_numpy(np.asarray(m, dtype=np.uint8))[None])[0].numpy() for m in masks])


def check_labels(spec: DatasetSpec, splits: dict[str, Features]) -> None:
    for split, features in splits.items():
        labels = np.asarray(features.y)
        if spec.task == "multiclass" and len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
            raise UserError(f"dataset {spec.name!r} split {split!r} has labels in [{labels.min()}, {labels.max()}] but "
                            f"declares {spec.num_classes} classes (labels must lie in [0, {spec.num_classes})); fix "
                            f"num_classes in the dataset spec or suite, or the labels in the data")


def data_kind(protocol: Protocol) -> str:
    """Which data a protocol consumes: the encoder itself, dense maps, or pooled features."""
    return "model" if "model" in protocol.requires else "dense" if "dense" in protocol.requires else "pooled"


def pending_kinds(cells: list[tuple[Task, Protocol, str, bool]]) -> list[str]:
    """The feature kinds (pooled, dense) that some not-yet-done cell reads."""
    return sorted({data_kind(protocol) for _, protocol, _, done in cells if not done} - {"model"})


def concat(parts: list[Features]) -> Features:
    return Features(np.concatenate([p.x for p in parts]), np.concatenate([p.y for p in parts]))


def concat_images(parts: list[ImageSplit]) -> ImageSplit:
    if all(isinstance(p.images, np.ndarray) for p in parts) and len({p.images.shape[1:] for p in parts}) == 1:
        images = np.concatenate([p.images for p in parts])
    else:
        images = [image for p in parts for image in p.images]
    return ImageSplit(images, np.concatenate([p.labels for p in parts]))


@dataclass(frozen=True)
class PlannedTask:
    """One node of a run's task graph: a feature extraction or a result cell, and whether its output
    already exists (then it is skipped)."""

    stage: str  # "extract" or "evaluate"
    encoder: str
    dataset: str
    what: str  # "split kind" for extraction, the protocol for a result cell
    key: str
    done: bool


class Evaluator:
    """Runs one suite for many encoders; owns the cache, the store and the run's counters."""

    def __init__(self, suite: Suite, options: RunOptions, echo: Callable[[str], None] = print):
        self.suite, self.options = suite, dataclasses.replace(options, device=distributed.rank_device(options.device))
        self.dist = distributed.init_from_env(options.device)
        self.echo = echo if self.dist.is_main else (lambda _: None)  # rank 0 speaks for the group
        self.cache = FeatureCache(options.cache_dir)
        self.store = ResultsStore(options.results_path)
        self.report = RunReport()
        for protocol in options.protocols:
            PROTOCOLS.get(protocol)  # fail early on a typo, with close matches
        for name in suite.datasets:  # unknown protocols or parameters fail before any work is done
            for task in suite.tasks(name, options.protocols):
                make_protocol(task.protocol, task.params)

    def run(self, model_specs: list[str]) -> RunReport:
        start = time.perf_counter()
        for text in model_specs:
            spec = ModelSpec.parse(text)
            encoder = load_encoder(spec)
            self.report.encoders.append(encoder.label)
            for line in encoder.load_report:
                self.echo(f"[{encoder.label}] {line}")
            for name, options in self.suite.datasets.items():
                self._guarded(f"{encoder.label} / {name}", self.evaluate_dataset, encoder, str(spec), name, options)
        self.report.seconds = time.perf_counter() - start
        return self.report

    def extract(self, model_spec: str) -> RunReport:
        """Only the feature extractions that the suite's pending cells need (a cluster job's first stage)."""
        encoder = load_encoder(ModelSpec.parse(model_spec))
        self.report.encoders.append(encoder.label)
        for name, options in self.suite.datasets.items():
            self._guarded(f"{encoder.label} / {name}", self.extract_dataset, encoder, name, options)
        return self.report

    def extract_dataset(self, encoder: Encoder, name: str, options: dict[str, Any]) -> None:
        plan = plan_dataset(name, options, self.options.data_root)
        preprocessing = encoder.preprocessing.with_overrides(self.suite.preprocessing_for(name))
        for kind in pending_kinds(self.cells(encoder, plan, preprocessing)):
            self.features(encoder, preprocessing, plan, kind)

    def plan(self, model_specs: list[str]) -> list[PlannedTask]:
        """The run's task graph without running it: every needed extraction and result cell, each
        marked done when its output is already in the cache or the results store."""
        tasks = []
        for text in model_specs:
            encoder = load_encoder(ModelSpec.parse(text))
            for name, options in self.suite.datasets.items():
                plan = plan_dataset(name, options, self.options.data_root)
                preprocessing = encoder.preprocessing.with_overrides(self.suite.preprocessing_for(name))
                cells = self.cells(encoder, plan, preprocessing)
                tasks += [PlannedTask("extract", encoder.label, name, f"{split} {kind}", key.digest,
                                      self.cache.contains(key))
                          for kind in pending_kinds(cells) for split in plan.spec.splits
                          for key in [feature_key(encoder, preprocessing, plan, split, kind)]]
                tasks += [PlannedTask("evaluate", encoder.label, name, task.protocol, key, done)
                          for task, _, key, done in cells]
        return tasks

    def suite_cells(self, encoder: Encoder, plan: DatasetPlan, preprocessing: Preprocessing
                    ) -> list[tuple[Task, Protocol, str]]:
        """(task, protocol, cell key) of every suite cell of the dataset."""
        keys = {split: feature_key(encoder, preprocessing, plan, split).digest for split in plan.spec.splits}
        cells = []
        for task in self.suite.tasks(plan.spec.name, self.options.protocols):
            protocol = make_protocol(task.protocol, task.params)
            cells.append((task, protocol, cell_key(task, protocol.version, vars(protocol.params), keys,
                                                   self.suite.seed)))
        return cells

    def cells(self, encoder: Encoder, plan: DatasetPlan, preprocessing: Preprocessing
              ) -> list[tuple[Task, Protocol, str, bool]]:
        """(task, protocol, cell key, done) of every cell the encoder can run on the dataset."""
        return [(task, protocol, key, not self.options.recompute and self.store.find(key) is not None)
                for task, protocol, key in self.suite_cells(encoder, plan, preprocessing)
                if not skip_reason(protocol, encoder.capabilities, plan.spec.task, encoder.label, plan.spec.name)]

    def _guarded(self, cell: str, work: Callable[..., None], *args: Any) -> None:
        """Run one cell; a failure is reported and the run goes on, so finished cells are never lost."""
        try:
            work(*args)
        except UserError as err:
            self.report.failures.append(f"{cell}: {err}")
            self.echo(f"FAILED {cell}: {err}")
        except Exception as err:  # one broken cell must not end a study of hours; it is reported instead
            log.debug("traceback of the failed cell %s", cell, exc_info=True)
            message = f"{type(err).__name__}: {err} (set TRANSFERBENCH_LOG=DEBUG for the traceback)"
            self.report.failures.append(f"{cell}: {message}")
            self.echo(f"FAILED {cell}: {message}")

    def evaluate_dataset(self, encoder: Encoder, spec_text: str, name: str, options: dict[str, Any]) -> None:
        """Run the dataset's pending protocol cells; data is loaded only for kinds some cell needs."""
        plan = plan_dataset(name, options, self.options.data_root)
        preprocessing = encoder.preprocessing.with_overrides(self.suite.preprocessing_for(name))
        cells = self.suite_cells(encoder, plan, preprocessing)
        to_run = [self.needs_run(*cell, encoder, plan) for cell in cells] if self.dist.is_main else None
        pending = [cell for cell, run in zip(cells, distributed.broadcast_from_main(to_run)) if run]
        if not pending:
            self.echo(f"[{encoder.label}] {name}: every cell already done or skipped (--recompute reruns them)")
            return
        data_by_kind: dict[str, TaskData | Exception] = {}
        for task, protocol, key in pending:
            kind = data_kind(protocol)
            self._guarded(f"{encoder.label} / {name} / {task.protocol}", self.run_cell, task, protocol, key, kind,
                          data_by_kind, encoder, spec_text, preprocessing, plan)

    def needs_run(self, task: Task, protocol: Protocol, key: str, encoder: Encoder, plan: DatasetPlan) -> bool:
        """False for a cell already stored or skipped (recording the skip, with its reason, if new)."""
        if not self.options.recompute and self.already_done(key):
            return False
        reason = skip_reason(protocol, encoder.capabilities, plan.spec.task, encoder.label, plan.spec.name)
        if reason:
            self.skip(task, encoder, key, reason)
        return not reason

    def already_done(self, key: str) -> bool:
        stored = self.store.find(key)
        if stored is not None:
            self.report.reused += 1
            self.report.rows.append(stored)
        return stored is not None or self.store.is_skipped(key)

    def skip(self, task: Task, encoder: Encoder, key: str, reason: str) -> None:
        self.store.add_skip(self.suite.name, encoder.label, task.dataset, task.protocol, reason, key)
        self.report.skipped.append(f"{encoder.label} / {task.dataset} / {task.protocol}: {reason}")
        self.echo(f"[{encoder.label}] {task.dataset} {task.protocol}: skipped ({reason})")

    def run_cell(self, task: Task, protocol: Protocol, key: str, kind: str,
                 data_by_kind: dict[str, TaskData | Exception], encoder: Encoder, spec_text: str,
                 preprocessing: Preprocessing, plan: DatasetPlan) -> None:
        """Score one cell; a dataset's data of each kind is loaded once, and a load that failed is not
        retried for the next cell of the same kind (its error is reported for each)."""
        if kind not in data_by_kind:
            try:
                data_by_kind[kind] = self.task_data(kind, encoder, preprocessing, plan)
            except Exception as err:
                data_by_kind[kind] = err
                raise
        data = data_by_kind[kind]
        if isinstance(data, Exception):
            raise data
        if not self.dist.is_main and kind != "model":
            return  # this rank helped extract; rank 0 runs the feature protocols
        if "text" in protocol.requires:
            data = dataclasses.replace(data, class_names=plan.spec.class_names, text_fn=encoder.encode_text,
                                       logit_scale=encoder.logit_scale)
        self.run_task(task, protocol, key, data, encoder, spec_text, preprocessing, data.cache_keys)

    def features(self, encoder: Encoder, preprocessing: Preprocessing, plan: DatasetPlan, kind: str = "pooled"
                 ) -> tuple[dict[str, Features], dict[str, str]]:
        splits, keys, hits = cached_features(self.cache, encoder, preprocessing, plan, self.options, kind=kind)
        self.report.cache_hits += hits
        self.report.cache_misses += len(splits) - hits
        source = "from cache" if hits == len(splits) else f"extracted {len(splits) - hits} split(s)"
        sizes = ", ".join(f"{split} {len(f)}" for split, f in splits.items())
        self.echo(f"[{encoder.label}] {plan.spec.name}: {kind} features {source} ({sizes})")
        return splits, keys

    def task_data(self, kind: str, encoder: Encoder, preprocessing: Preprocessing, plan: DatasetPlan) -> TaskData:
        """Train/val/test of one kind: the official val split where the dataset has one (Ericsson's
        Aircraft, DTD, Flowers, VOC), else the reference hold-out of 20% of train (np.random.seed(0)
        shuffle). A dataset that is one pool (few-shot sets) becomes train, with empty val and test."""
        if kind == "model":
            splits, images = self.image_indices(plan)
            keys = {split: feature_key(encoder, preprocessing, plan, split).digest for split in plan.spec.splits}
        else:
            (splits, keys), images = self.features(encoder, preprocessing, plan, kind), None
        extras = {"images": images, "encoder": encoder if kind == "model" else None, "preprocessing": preprocessing,
                  "dataset": plan.spec.name, "cache_keys": keys}
        spec = plan.spec
        if "train" not in splits:
            pool = concat(list(splits.values()))
            empty = Features(pool.x[:0], pool.y[:0])
            return TaskData(pool, empty, empty, spec.num_classes, spec.metric, spec.task, **extras)
        train, test = splits["train"], splits["test"]
        if "val" in splits:
            val = splits["val"]
        else:
            train_idx, val_idx = holdout_split(len(train), HOLDOUT_FRACTION, seed=0)
            train, val = Features(train.x[train_idx], train.y[train_idx]), Features(train.x[val_idx], train.y[val_idx])
        check_labels(spec, {"train": train, "val": val, "test": test})
        return TaskData(train, val, test, spec.num_classes, spec.metric, spec.task, **extras)

    def image_indices(self, plan: DatasetPlan) -> tuple[dict[str, Features], ImageSplit]:
        """For protocols that train the encoder: every split's images in one pool, and per split the
        pool indices (as `x`) with their labels."""
        loaded = {split: load_split(plan.spec, split, plan.root, plan.train_subset) for split in plan.spec.splits}
        offsets = np.cumsum([0] + [len(s) for s in loaded.values()])
        splits = {split: Features(np.arange(offsets[i], offsets[i + 1]), data.labels)
                  for i, (split, data) in enumerate(loaded.items())}
        return splits, concat_images(list(loaded.values()))

    def run_task(self, task: Task, protocol: Protocol, key: str, data: TaskData, encoder: Encoder, spec_text: str,
                 preprocessing: Preprocessing, keys: dict[str, str]) -> None:
        start = time.perf_counter()
        result = protocol.evaluate(data)  # under torchrun, every rank takes part (fine-tuning runs DDP)
        seconds = time.perf_counter() - start
        if not self.dist.is_main:
            return
        row = ResultRow(
            suite=self.suite.name, encoder=encoder.label, encoder_spec=spec_text, encoder_identity=encoder.identity,
            random_init=encoder.random_init, dataset=task.dataset, protocol=task.protocol,
            protocol_version=protocol.version, metric=result.metric, value=result.value,
            params=vars(protocol.params) | {"val_split": "official" if "val" in keys else "holdout20_seed0"},
            chosen=result.chosen, details=result.details, preprocessing=preprocessing.as_dict(),
            split_sizes=data.split_sizes, cache_keys=keys, seed=self.suite.seed, seconds=seconds,
            cell_key=key)
        self.store.add(row)
        self.report.rows.append(row)
        self.echo(f"[{encoder.label}] {task.dataset} {task.protocol}: {result.value:.2f} ({result.metric}, "
                  f"{seconds:.1f}s)")


def evaluate(model_specs: list[str], suite: Suite, options: RunOptions = RunOptions(),
             echo: Callable[[str], None] = print) -> RunReport:
    """Library entry point: evaluate every model on every suite cell; returns the run report."""
    return Evaluator(suite, options, echo).run(model_specs)


__all__ = ["Evaluator", "RunOptions", "RunReport", "evaluate"]
