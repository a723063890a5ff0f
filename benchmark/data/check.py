"""`check-data`: for each dataset of a suite, is its root present and does every split hold the
official number of images? A missing root names the layout expected; a short split names the split
and the count expected."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.config import Suite
from benchmark.data import dataset_spec, load_split, resolve_root
from benchmark.errors import UserError


@dataclass
class DataReport:
    dataset: str
    root: Path | None
    counts: dict[str, int]
    problems: list[str]

    @property
    def complete(self) -> bool:
        return not self.problems

    def line(self) -> str:
        sizes = ", ".join(f"{split} {n}" for split, n in self.counts.items())
        status = "ok" if self.complete else "INCOMPLETE: " + "; ".join(self.problems)
        return f"{self.dataset:14s} {status}" + (f" ({sizes})" if sizes else "") + (f" [{self.root}]" if self.root else "")


def check_dataset(name: str, options: dict, data_root: Path | None) -> DataReport:
    try:
        spec = dataset_spec(name, options)
        root = resolve_root(spec, options.get("root"), data_root)
    except UserError as err:
        return DataReport(name, None, {}, [str(err)])
    counts, problems = {}, []
    for split in spec.splits:
        try:
            counts[split] = len(load_split(spec, split, root))
        except UserError as err:
            problems.append(f"split {split!r} did not load: {err}")
            continue
        expected = spec.official_sizes.get(split)
        if expected is not None and counts[split] != expected:
            problems.append(f"split {split!r} has {counts[split]} images, the official split has {expected}")
    return DataReport(name, root, counts, problems)


def check_suite_data(suite: Suite, data_root: Path | None) -> list[DataReport]:
    return [check_dataset(name, options, data_root) for name, options in suite.datasets.items()]
