"""`check-data`: for each dataset of a suite, is its root present and does every split hold the
official number of images? A missing root names the layout expected; a short split names the split
and the count expected; either names the official archive to download and where to extract it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmark.config import Suite
from benchmark.data import dataset_spec, load_split, resolve_root
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
        where = options.get("root") or (Path(data_root) / name if data_root else None)
        return DataReport(name, None, {}, [f"not found ({f'looked in {where}' if where else 'no --data-root'})"],
                          **hints)
    counts, problems = {}, []
    for split in spec.splits:
        try:
            counts[split] = len(load_split(spec, split, root))
        except UserError as err:
            problems.append(f"split {split!r} did not load: {err}")
            continue
        except Exception as err:  # a malformed file: report it for this dataset and check the others
            problems.append(f"split {split!r} did not load: {type(err).__name__}: {err}")
            continue
        expected = spec.official_sizes.get(split)
        if expected is not None and counts[split] != expected:
            problems.append(f"split {split!r} has {counts[split]} images, the official split has {expected}")
    return DataReport(name, root, counts, problems, **hints)


def check_suite_data(suite: Suite, data_root: Path | None) -> list[DataReport]:
    return [check_dataset(name, options, data_root) for name, options in suite.datasets.items()]
