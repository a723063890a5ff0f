"""Hugging Face hub datasets by name, through `datasets.load_dataset` and the hub cache:

    datasets:
      cars: {source: hf_hub, repo: tanganke/stanford_cars, revision: main, num_classes: 196,
             split_names: {train: train, test: test}, image_column: image, label_column: label}

Online, `datasets` downloads and caches as usual. Offline, a dataset `datasets` has prepared before
loads from its own cache; one that is only in the hub cache (`huggingface-cli download --repo-type
dataset REPO`) loads from that snapshot. Images are decoded one at a time when read, so a large split
is never held in memory. The revision the data came from (the snapshot's commit where it is known) is
part of the dataset's identity, so of every cache key, and is written into each result row.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data import SOURCES
from benchmark.data.base import DatasetSpec, ImageSplit, LazyImages
from benchmark.errors import MissingDataError, UserError, hub_cache_error
from benchmark.vocab import Metric


class HubImages(LazyImages):
    """The image column of a `datasets.Dataset`, decoded on access; `[indices]` selects lazily too."""

    def __init__(self, table: Any, column: str):
        self.table, self.column = table, column

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (np.ndarray, list, slice)):
            chosen = np.arange(len(self.table))[index]
            return HubImages(self.table.select(chosen.tolist()), self.column)
        return self.table[int(index)][self.column]

    def __add__(self, other: HubImages) -> HubImages:
        from datasets import concatenate_datasets

        return HubImages(concatenate_datasets([self.table.select_columns([self.column]),
                                               other.table.select_columns([other.column])]), self.column)


def snapshot(repo: str, revision: str | None) -> Path | None:
    """The hub-cache snapshot of the dataset repository, if it is there (no network)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, repo_type="dataset", revision=revision, local_files_only=True))
    except Exception:  # not cached (huggingface_hub raises several kinds): the caller decides what that means
        return None


@functools.cache  # asked once per process: validating, planning and check-data all build the spec
def resolved_revision(repo: str, revision: str | None) -> str:
    """The commit the data comes from: the cached snapshot's, else the hub's answer, else as given."""
    cached = snapshot(repo, revision)
    if cached is not None:
        return cached.name
    try:
        from huggingface_hub import HfApi

        return HfApi().dataset_info(repo, revision=revision).sha or (revision or "main")
    except Exception:  # offline: the revision as the suite names it
        return revision or "main"


def not_cached_error(repo: str, cause: object) -> MissingDataError:
    return hub_cache_error(f"hf_hub dataset {repo!r} could not be loaded ({str(cause).splitlines()[0][:160]}); it is "
                           f"neither in the datasets cache nor in the hub cache",
                           f"`huggingface-cli download --repo-type dataset {repo}` (or load it once with "
                           f"datasets.load_dataset)")


def make_loader(repo: str, revision: str | None, split_names: dict[str, str], image_column: str, label_column: str):
    def load(split: str, root: Path | None) -> ImageSplit:
        from datasets import load_dataset

        name = split_names.get(split, split)
        try:
            table = load_dataset(repo, revision=revision, split=name)
        except (ConnectionError, FileNotFoundError, OSError) as err:  # offline: try the hub-cache snapshot
            cached = snapshot(repo, revision)
            if cached is None:
                raise not_cached_error(repo, err) from None
            table = load_dataset(str(cached), split=name)
        except ValueError as err:
            raise UserError(f"hf_hub dataset {repo!r}: {str(err).splitlines()[0]}") from None
        for column in (image_column, label_column):
            if column not in table.column_names:
                raise UserError(f"hf_hub dataset {repo!r} split {name!r} has no column {column!r}; its columns are "
                                f"{table.column_names} (set image_column / label_column)")
        return ImageSplit(HubImages(table, image_column), np.asarray(table[label_column], dtype=np.int64))

    return load


@SOURCES.register("hf_hub")
def hf_hub(name: str, repo: str, num_classes: int, revision: str | None = None,
           split_names: dict[str, str] | None = None, image_column: str = "image", label_column: str = "label",
           metric: Metric = Metric.TOP1, splits: tuple[str, ...] = ("train", "test"), **fields) -> DatasetSpec:
    split_names = dict(split_names or {})
    unknown = set(split_names) - set(splits)
    if unknown:
        raise UserError(f"dataset {name!r}: split_names maps {sorted(unknown)}, which are not among its splits "
                        f"{list(splits)}")
    return DatasetSpec(name=name, num_classes=num_classes,
                       load=make_loader(repo, revision, split_names, image_column, label_column), metric=metric,
                       splits=tuple(splits), revision=resolved_revision(repo, revision),
                       layout=f"the Hugging Face dataset {repo} (datasets cache or hub cache)",
                       download=f"`huggingface-cli download --repo-type dataset {repo}`",
                       description=f"Hugging Face hub dataset {repo}", **fields)
