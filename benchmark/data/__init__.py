"""Datasets: a registry of `DatasetSpec`s (one module each, or one module per family of layouts)
and of sources that turn a suite's inline dataset definition into a spec (image folder, HF files)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.base import DatasetSpec, ImageSplit, resolve_root
from benchmark.data.label_fractions import Labelled
from benchmark.data.splits import stratified_subset
from benchmark.errors import UserError
from benchmark.registry import Registry

DATASETS: Registry[DatasetSpec] = Registry("dataset", package=__name__, check=lambda obj: isinstance(obj, DatasetSpec),
                                          expected="a benchmark.data.DatasetSpec")
SOURCES: Registry[Callable[..., DatasetSpec]] = Registry("dataset source", package=__name__, check=callable,
                                                               expected="a function returning a DatasetSpec")
SUITE_OPTIONS = ("root", "train_subset", "test_subset", "train_fraction", "train_list", "preprocessing",
                 "protocols")  # suite-side keys of a dataset entry


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    DATASETS.add(spec.name, spec)
    return spec


def dataset_spec(name: str, options: dict[str, Any] | None = None) -> DatasetSpec:
    """A registered dataset, or one a suite defines inline with `source:` (e.g. image_folder)."""
    options = options or {}
    if "source" in options:
        factory = SOURCES.get(options["source"])
        params = {k: v for k, v in options.items() if k not in ("source", *SUITE_OPTIONS)}
        try:
            return factory(name=name, **params)
        except TypeError as err:
            raise UserError(f"dataset {name!r} (source {options['source']!r}): {err}") from None
    return DATASETS.get(name)


def load_split(spec: DatasetSpec, split: str, root: Path | None, train_subset: int | None = None,
               test_subset: int | None = None, labelled: Labelled | None = None) -> ImageSplit:
    """Load one split; `labelled` keeps the train images of a label fraction (`data.label_fractions`), then
    `train_subset` / `test_subset` keep a seeded, stratified subset of that split."""
    spec.check_split(split)
    data = spec.load(split, root)
    if labelled is not None and split == "train":
        data = labelled.select(data)
    keep = {"train": train_subset, "test": test_subset}.get(split)
    if keep:
        data = data.subset(stratified_subset(_class_of(data.labels), keep))
    return data


def _class_of(labels: np.ndarray) -> np.ndarray:
    return labels if labels.ndim == 1 else labels.argmax(1)


__all__ = ["DATASETS", "SOURCES", "DatasetSpec", "ImageSplit", "dataset_spec", "load_split",
           "register_dataset", "resolve_root"]
