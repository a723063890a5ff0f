"""`check-data`: for each dataset of a suite, is its root present and does every split hold the
official number of images? A missing root names the layout expected; a short split names the split
and the count expected; either names the official archive to download and where to extract it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.config import Suite
from benchmark.data import dataset_spec, load_split, resolve_root
from benchmark.data.base import DatasetSpec
from benchmark.errors import MissingDataError, UserError


@dataclass
class DataReport:
    dataset: str
    root: Path | None
    counts: dict[str, int]
    problems: list[str]
    download: str = ""
    layout: str = ""

    @property
    def complete(self) -> bool:
        return not self.problems

    def line(self) -> str:
        sizes = ", ".join(f"{split} {n}" for split, n in self.counts.items())
        status = "ok" if self.complete else "INCOMPLETE: " + "; ".join(self.problems)
        line = f"{self.dataset:14s} {status}" + (f" ({sizes})" if sizes else "")
        line += f" [{self.root}]" if self.root else ""
        if self.complete:
            return line
        hints = [("layout", self.layout), ("download", self.download)]
        return line + "".join(f"\n{'':15s}{what}: {text}" for what, text in hints if text)


def check_dataset(name: str, options: dict, data_root: Path | None) -> DataReport:
    try:
        spec = dataset_spec(name, options)
    except UserError as err:
        return DataReport(name, None, {}, [str(err)])
    hints = {"download": spec.download, "layout": spec.layout}
    try:
        root = resolve_root(spec, options.get("root"), data_root)
    except MissingDataError:
        where = options.get("root") or (Path(data_root) / (spec.folder or name) if data_root else None)
        return DataReport(name, None, {}, [f"not found ({f'looked in {where}' if where else 'no --data-root'})"],
                          **hints)
    counts, unloaded = split_counts(spec, root)
    return DataReport(name, root, counts, unloaded + size_problems(spec, counts), **hints)


def split_counts(spec: DatasetSpec, root: Path | None) -> tuple[dict[str, int], list[str]]:
    """Images per split read from `root`, and a problem line for each split that did not load."""
    counts, unloaded = {}, []
    for split in spec.splits:
        try:
            counts[split] = len(load_split(spec, split, root))
        except UserError as err:
            unloaded.append(f"split {split!r} did not load: {err}")
        except Exception as err:  # a malformed file: report it for this dataset and check the others
            unloaded.append(f"split {split!r} did not load: {type(err).__name__}: {err}")
    return counts, unloaded


def size_problems(spec: DatasetSpec, counts: dict[str, int]) -> list[str]:
    return [f"split {split!r} has {n} images, the official split has {spec.official_sizes[split]}"
            for split, n in counts.items() if spec.official_sizes.get(split, n) != n]


def check_suite_data(suite: Suite, data_root: Path | None) -> list[DataReport]:
    return [check_dataset(name, options, data_root) for name, options in suite.datasets.items()]
