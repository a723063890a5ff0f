"""Flags shared by several subcommands, each defined once (argparse parents, as dinov2's eval setup)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from benchmark.errors import UserError

DEFAULT_RESULTS = Path("results/runs.sqlite")


def parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def plugins() -> argparse.ArgumentParser:
    flags = parent()
    flags.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                       help="import a module (name or .py path) that registers protocols, datasets, encoder "
                            "sources or methods; repeatable")
    return flags


def results(help: str = "the SQLite results store") -> argparse.ArgumentParser:
    flags = parent()
    flags.add_argument("--results", type=Path, default=DEFAULT_RESULTS, help=f"{help} (default {DEFAULT_RESULTS})")
    return flags


def suite(default: str | None = "offline") -> argparse.ArgumentParser:
    flags = parent()
    flags.add_argument("--suite", default=default, help="suite name (see `ls suites`) or a YAML path")
    return flags


def models(required: bool = False) -> argparse.ArgumentParser:
    flags = parent()
    flags.add_argument("--model", action="append", default=[], required=required,
                       help="SOURCE:NAME[@WEIGHTS_FILE]; repeatable")
    return flags


def protocols() -> argparse.ArgumentParser:
    flags = parent()
    flags.add_argument("--protocol", action="append", default=[],
                       help="only this suite column (or every column of this protocol); repeatable")
    flags.add_argument("--recompute", action="store_true",
                       help="rerun protocols whose results are already stored (features still come from cache)")
    flags.add_argument("--seeds", type=non_negative_int, nargs="+", default=None, metavar="SEED",
                       help="run every seeded protocol (few-shot episodes, fine-tuning, the dense probe, and those "
                            "validating on the hold-out split) once per seed; tables show mean ± std over seeds "
                            "(default: the suite's `seeds:`, else 0)")
    return flags


def run() -> argparse.ArgumentParser:
    flags = parent()
    flags.add_argument("--cache-dir", type=Path, default=None,
                       help="feature cache (default $TRANSFERBENCH_CACHE or ~/.cache/transferbench)")
    flags.add_argument("--data-root", type=Path, default=None,
                       help="datasets live in DIR/<name> (default $TRANSFERBENCH_DATA)")
    flags.add_argument("--batch-size", type=positive_int, default=64)
    flags.add_argument("--workers", type=non_negative_int, default=None,
                       help="DataLoader worker processes (default: every available CPU with a GPU, 0 on the CPU)")
    flags.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...: every protocol and the extraction "
                                                       "run there")
    flags.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"),
                       help="extraction arithmetic (autocast); part of the cache key and of every row")
    return flags


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_fraction(text: str) -> float:
    """A finite number above 0 (argparse prints the message and exits 2 otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0 (e.g. 0.5), got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def run_options(args: argparse.Namespace):
    """The library's RunOptions from parsed flags (parsed once; the Namespace goes no further)."""
    from benchmark.config import seed_list
    from benchmark.devices import Precision
    from benchmark.distributed import rank_device
    from benchmark.pipeline.runner import RunOptions

    return RunOptions(cache_dir=args.cache_dir, data_root=args.data_root, batch_size=args.batch_size,
                      workers=args.workers, device=rank_device(args.device),
                      results_path=getattr(args, "results", DEFAULT_RESULTS),
                      protocols=tuple(getattr(args, "protocol", ()) or ()),
                      recompute=getattr(args, "recompute", False), precision=Precision(args.precision),
                      seeds=seed_list("--seeds", args.seeds) if getattr(args, "seeds", None) else ())


def existing_results(path: Path) -> Path:
    if not path.exists():
        raise UserError(f"no results store at {path}; run `transferbench evaluate` first or pass --results")
    return path


def key_values(pairs: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE options, each VALUE read as YAML (numbers, lists, booleans)."""
    import yaml

    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            parsed[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UserError(f"{what} {pair!r}: the value is not valid YAML (quote text, use [a, b] for lists)") from None
    return parsed


def print_run_table(results_path: Path, suite_name: str, encoders: list[str]) -> None:
    """The stored results of one suite, restricted to the encoders this run evaluated: one table per
    protocol with confidence intervals, the skipped cells and a summary in plain words."""
    from benchmark.results import ResultsStore
    from benchmark.results.report import render_report

    store = ResultsStore(results_path)
    latest, skips = store.latest(suite_name), store.skips(suite_name)
    latest, skips = latest[latest["encoder"].isin(encoders)], skips[skips["encoder"].isin(encoders)]
    if latest.empty:
        from benchmark.results.table import skip_notes

        print(skip_notes(skips))
        return
    print(render_report(latest, skips))
