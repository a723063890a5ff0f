"""From a (encoder, dataset) pair to what a protocol reads: features out of the cache (extracted on a
miss, sharded under torchrun), or the image pool for protocols that train the encoder; then train /
val / test as the reference selects them."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark import distributed
from benchmark.backbones import DENSE_MAPS
from benchmark.cache import FeatureCache
from benchmark.config import Suite
from benchmark.data import SUITE_OPTIONS, DatasetSpec, ImageSplit, dataset_spec, load_split, resolve_root
from benchmark.data.fingerprint import content_digest
from benchmark.data.label_fractions import Labelled, resolve_list
from benchmark.data.recipe import ARCHIVES_FOLDER
from benchmark.data.splits import HOLDOUT_FRACTION, holdout_split
from benchmark.data.base import LazyImages
from benchmark.encoders import Encoder
from benchmark.devices import Precision
from benchmark.errors import UserError
from benchmark.identity import Component, FeatureKey, component_versions
from benchmark.pipeline.extraction import EXTRACTION, extract_features
from benchmark.preprocessing import Preprocessing
from benchmark.protocols import FeatureTask, Features, ModelTask
from benchmark.protocols.base import TaskInputs, concat
from benchmark.vocab import FeatureKind, TaskType, ValSplit

HOLDOUT_RULE = Component("holdout_split", "1")  # 20% of train, np.random.seed(seed) shuffle (data.splits)
# the code behind each kind of input: its versions are part of the feature key
EXTRACTION_COMPONENTS: dict[FeatureKind, tuple[Component, ...]] = {
    FeatureKind.POOLED: (EXTRACTION,), FeatureKind.DENSE: (EXTRACTION, DENSE_MAPS), FeatureKind.MODEL: (),
    FeatureKind.TEXT: (EXTRACTION,)}


@dataclass(frozen=True)
class DatasetPlan:
    """A suite dataset resolved: its spec, root, options and cache identity."""

    spec: DatasetSpec
    root: Path | None
    train_subset: int | None
    identity: dict[str, Any]
    test_subset: int | None = None
    labelled: Labelled | None = None  # a label fraction of train (`data.label_fractions`)
    fit_on: DatasetPlan | None = None  # a shift test set's (`DatasetSpec.train_from`): whose train fits the heads

    @property
    def splits(self) -> tuple[str, ...]:
        """The splits its cells read: its own, after the train (and val) of `fit_on` for a shift test set."""
        if self.fit_on is None:
            return self.spec.splits
        return tuple(split for split in self.fit_on.splits if split != "test") + self.spec.splits

    def provider(self, split: str) -> DatasetPlan:
        """The plan whose data a split is: `fit_on` for the splits a shift test set borrows, else itself."""
        return self.fit_on if self.fit_on is not None and split not in self.spec.splits else self

    def load(self, split: str) -> ImageSplit:
        plan = self.provider(split)
        return load_split(plan.spec, split, plan.root, plan.train_subset, plan.test_subset, plan.labelled)


def plan_dataset(name: str, options: dict[str, Any], data_root: Path | None,
                 suite_datasets: dict[str, dict[str, Any]] | None = None) -> DatasetPlan:
    """A suite dataset resolved before any work. A shift test set (`train_from`) also resolves the dataset
    its heads are fitted on, with that dataset's own suite options when the suite lists it."""
    spec = dataset_spec(name, options)
    subsets = [key for key in ("train_subset", "test_subset") if options.get(key)]
    if subsets and spec.task not in (TaskType.MULTICLASS, TaskType.MULTILABEL):
        named = " and ".join(subsets)
        raise UserError(f"dataset {name!r}: {named} take a class-stratified subset, but {name} is {spec.task} data "
                        f"without classes to stratify; remove {named} from its suite entry")
    root = resolve_root(spec, options.get("root"), data_root)
    labelled = label_fraction(spec, options, data_root)
    fit_on = None
    if spec.train_from:
        try:
            fit_on = plan_dataset(spec.train_from, (suite_datasets or {}).get(spec.train_from, {}), data_root)
        except UserError as err:
            raise type(err)(f"its heads are fitted on {spec.train_from}'s train split, which is missing: {err}") from None
    return DatasetPlan(spec, root, options.get("train_subset"), dataset_identity(spec, root, options, labelled),
                       options.get("test_subset"), labelled, fit_on)


def label_fraction(spec: DatasetSpec, options: dict[str, Any], data_root: Path | None) -> Labelled | None:
    """The dataset entry's `train_fraction` / `train_list`, checked before any work (None without them)."""
    if options.get("train_fraction") is None and options.get("train_list") is None:
        return None
    if spec.task != TaskType.MULTICLASS:
        raise UserError(f"dataset {spec.name!r}: train_fraction / train_list keep labelled images per class, but "
                        f"{spec.name} is {spec.task} data; remove them from its suite entry")
    archives = data_root / ARCHIVES_FOLDER if data_root is not None else None
    listed = resolve_list(str(options["train_list"]), archives) if options.get("train_list") is not None else None
    return Labelled(options.get("train_fraction"), listed)


def dataset_identity(spec: DatasetSpec, root: Path | None, options: dict[str, Any],
                     labelled: Labelled | None = None) -> dict[str, Any]:
    """What the data are: the loader's name and version, the suite's options, the hub revision, and for
    a local root its content (`data.fingerprint`), not its path: moved data keep their features. A label
    fraction adds its fraction and its list's content; without one the identity is what it always was."""
    identity = {"name": spec.name, "version": spec.version, "revision": spec.revision,
                "train_subset": options.get("train_subset"), "test_subset": options.get("test_subset"),
                "source": {k: v for k, v in options.items() if k not in SUITE_OPTIONS and k != "root"},
                "content": content_digest(root) if root is not None and root.exists() else None}
    return identity | (labelled.identity() if labelled is not None else {})


@dataclass(frozen=True)
class Pairing:
    """One encoder on one suite dataset, with the preprocessing the suite gives it there."""

    encoder: Encoder
    spec_text: str
    dataset: DatasetPlan
    preprocessing: Preprocessing
    precision: Precision = Precision.FP32  # of feature extraction


def pair(encoder: Encoder, spec_text: str, suite: Suite, name: str, data_root: Path | None,
         precision: Precision = Precision.FP32, protocol_preprocessing: dict[str, Any] | None = None,
         dataset: DatasetPlan | None = None) -> Pairing:
    """The one place a suite dataset is resolved (unless its plan is given) and its preprocessing overrides
    applied: the suite's, the dataset entry's, then the protocol entry's (part of the protocol's definition)."""
    dataset = dataset or plan_dataset(name, suite.datasets[name], data_root, suite.datasets)
    overrides = {**suite.preprocessing_for(name), **(protocol_preprocessing or {})}
    return Pairing(encoder, spec_text, dataset, encoder.preprocessing.with_overrides(overrides), precision)


@dataclass(frozen=True)
class ExtractOptions:
    batch_size: int = 64
    workers: int = 0
    device: str = "cpu"


def feature_key(encoder: Encoder, preprocessing: Preprocessing, plan: DatasetPlan, split: str,
                kind: FeatureKind = FeatureKind.POOLED, precision: Precision = Precision.FP32) -> FeatureKey:
    """A split borrowed from `fit_on` has that dataset's key: one extraction serves its own cells too."""
    plan = plan.provider(split)
    return FeatureKey(encoder.identity, preprocessing.key_fields(), plan.identity, split, kind, precision,
                      component_versions(EXTRACTION_COMPONENTS[kind]))


def pairing_key(pairing: Pairing, split: str, kind: FeatureKind = FeatureKind.POOLED) -> FeatureKey:
    return feature_key(pairing.encoder, pairing.preprocessing, pairing.dataset, split, kind, pairing.precision)


def feature_keys(pairing: Pairing, kind: FeatureKind = FeatureKind.POOLED) -> dict[str, str]:
    return {split: pairing_key(pairing, split, kind).digest for split in pairing.dataset.splits}


def cached_features(cache: FeatureCache, pairing: Pairing, options: ExtractOptions, only: tuple[str, ...] = (),
                    kind: FeatureKind = FeatureKind.POOLED) -> tuple[dict[str, Features], dict[str, str], int]:
    """Features of the dataset's splits (or `only` these), from the cache or freshly extracted:
    (splits, keys, hits). `kind` is POOLED (N, D) or DENSE (N, C, h, w)."""
    splits, keys, hits = {}, {}, 0
    for split in only or pairing.dataset.splits:
        key = pairing_key(pairing, split, kind)
        compute = partial(extract_split, pairing, split, options, kind)
        if distributed.current().enabled:
            arrays, hit = sharded_get_or_compute(cache, key, compute)
        else:
            arrays, hit = cache.get_or_compute(key, compute)
        hits += hit
        splits[split], keys[split] = Features(arrays["features"], arrays["labels"]), key.digest
    return splits, keys, hits


def sharded_get_or_compute(cache: FeatureCache, key: FeatureKey, compute: Callable[..., dict[str, np.ndarray]]
                           ) -> tuple[dict[str, np.ndarray], bool]:
    """Under torchrun: each rank extracts and writes its own shard, then every rank reads the joined
    shards. Rank 0 decides whether the entry exists, so all ranks reach the same barriers."""
    info = distributed.current()
    hit = distributed.broadcast_from_main(cache.load(key) is not None)
    if not hit:
        failure = None
        try:
            cache.save_shard(key, info.rank, info.world_size, compute(shard=(info.rank, info.world_size)))
        except Exception as err:  # reported below by every rank, after the collective all of them reach
            failure = f"rank {info.rank}: {err if isinstance(err, UserError) else f'{type(err).__name__}: {err}'}"
        failed = distributed.failures_on_any_rank(failure)  # doubles as the barrier before reading the shards
        if failed:
            raise UserError(f"feature extraction failed ({'; '.join(failed)})")
    arrays = cache.load(key)
    if arrays is None:
        raise UserError(f"the feature shards of cache entry {key.digest[:12]} are incomplete; every rank must see "
                        f"the same --cache-dir (a shared filesystem path)")
    return arrays, hit


def extract_split(pairing: Pairing, split: str, options: ExtractOptions, kind: FeatureKind = FeatureKind.POOLED,
                  shard: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Features and labels of one split (of one rank's share of it, with dataset positions in
    "index", when `shard` is given)."""
    plan, encoder = pairing.dataset.provider(split), pairing.encoder
    images = pairing.dataset.load(split)
    extracted = extract_features(encoder, images, pairing.preprocessing, batch_size=options.batch_size,
                                 workers=options.workers, device=options.device, kind=kind, shard=shard,
                                 precision=pairing.precision, desc=f"{encoder.label} {plan.spec.name}/{split} {kind}")
    labels = images.labels[extracted.kept]
    if plan.spec.task == TaskType.SEGMENTATION:  # masks follow the images' resize and crop
        labels = transform_masks(labels, pairing.preprocessing)
    arrays = {"features": extracted.features, "labels": labels}
    return arrays | {"index": extracted.kept} if shard else arrays


def transform_masks(masks: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    transform = preprocessing.mask_transform()
    return np.stack([transform(torch.from_numpy(np.asarray(m, dtype=np.uint8))[None])[0].numpy() for m in masks])


def check_labels(spec: DatasetSpec, splits: dict[str, Features]) -> None:
    for split, features in splits.items():
        labels = np.asarray(features.y)
        if spec.task == TaskType.MULTICLASS and len(labels) and (labels.min() < 0 or labels.max() >= spec.num_classes):
            raise UserError(f"dataset {spec.name!r} split {split!r} has labels in [{labels.min()}, {labels.max()}] but "
                            f"declares {spec.num_classes} classes (labels must lie in [0, {spec.num_classes})); fix "
                            f"num_classes in the dataset spec or suite, or the labels in the data")


def has_holdout(plan: DatasetPlan) -> bool:
    """Whether model selection validates on a seeded hold-out of train (no official val split)."""
    return {"train", "test"} <= set(plan.splits) and "val" not in plan.splits


def selection_splits(splits: dict[str, Features], holdout_seed: int = 0
                     ) -> tuple[Features, Features, Features, ValSplit]:
    """(train, val, test, where val came from): the official val split where the dataset has one
    (Ericsson's Aircraft, DTD, Flowers, VOC), else a hold-out of 20% of train (np.random.seed(holdout_seed)
    shuffle; seed 0 is the reference's). A dataset without train and test splits is one pool (few-shot
    sets), returned as train with empty val and test."""
    if "train" not in splits or "test" not in splits:
        pool = concat(list(splits.values()))
        empty = Features(pool.x[:0], pool.y[:0])
        return pool, empty, empty, ValSplit.NONE
    train, test = splits["train"], splits["test"]
    if "val" in splits:
        return train, splits["val"], test, ValSplit.OFFICIAL
    train_idx, val_idx = holdout_split(len(train), HOLDOUT_FRACTION, seed=holdout_seed)
    return (Features(train.x[train_idx], train.y[train_idx]), Features(train.x[val_idx], train.y[val_idx]), test,
            ValSplit.HOLDOUT)


def task_fields(spec: DatasetSpec, splits: dict[str, Features], device: str, holdout_seed: int = 0
                ) -> tuple[dict[str, Any], ValSplit]:
    train, val, test, val_split = selection_splits(splits, holdout_seed)
    if val_split is not ValSplit.NONE:
        check_labels(spec, {"train": train, "val": val, "test": test})
    return {"train": train, "val": val, "test": test, "num_classes": spec.num_classes, "metric": spec.metric,
            "task": spec.task, "dataset": spec.name, "device": device, "test_classes": spec.class_subset}, val_split


def feature_task(splits: dict[str, Features], pairing: Pairing, device: str = "cpu", holdout_seed: int = 0
                 ) -> tuple[FeatureTask, ValSplit]:
    spec, encoder = pairing.dataset.spec, pairing.encoder
    fields, val_split = task_fields(spec, splits, device, holdout_seed)
    text = encoder if FeatureKind.TEXT in encoder.capabilities else None
    texts = spec.texts(pairing.dataset.root) if spec.texts else ()  # the captions an image-text set's labels index
    return FeatureTask(**fields, class_names=spec.names(), text=text, texts=texts), val_split


def model_task(pairing: Pairing, device: str = "cpu", holdout_seed: int = 0, workers: int = 0
               ) -> tuple[ModelTask, ValSplit]:
    """Every split's images in one pool; per split, the pool indices (as `x`) with their labels."""
    plan = pairing.dataset
    loaded = {split: plan.load(split) for split in plan.splits}
    offsets = np.cumsum([0] + [len(s) for s in loaded.values()])
    splits = {split: Features(np.arange(offsets[i], offsets[i + 1]), data.labels)
              for i, (split, data) in enumerate(loaded.items())}
    fields, val_split = task_fields(plan.spec, splits, device, holdout_seed)
    return ModelTask(**fields, images=concat_images(list(loaded.values())), encoder=pairing.encoder,
                     preprocessing=pairing.preprocessing, workers=workers), val_split


def concat_images(parts: list[ImageSplit]) -> ImageSplit:
    if all(isinstance(p.images, np.ndarray) for p in parts) and len({p.images.shape[1:] for p in parts}) == 1:
        images = np.concatenate([p.images for p in parts])
    elif all(isinstance(p.images, LazyImages) for p in parts) and len({type(p.images) for p in parts}) == 1:
        images = functools.reduce(operator.add, [p.images for p in parts])  # still decoded only when read
    else:
        images = [image for p in parts for image in p.images]
    return ImageSplit(images, np.concatenate([p.labels for p in parts]))


__all__ = ["DatasetPlan", "ExtractOptions", "Pairing", "TaskInputs", "cached_features", "feature_key", "feature_task",
           "has_holdout", "model_task", "pair", "plan_dataset"]
