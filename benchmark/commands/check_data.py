"""`check-data`: which dataset roots of a suite are present and complete."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import common, data


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check-data", parents=[common.plugins(), common.suite(default="ericsson2021"),
                                                   data.data_root()],
                            help="which dataset roots of a suite are present and complete")
    parser.add_argument("--verify", action="store_true",
                        help="also recompute the checksums of the archives present in the archives folder")
    parser.add_argument("--archives", type=Path, default=None, metavar="DIR",
                        help="the archives folder --verify reads (default DATA_ROOT/_archives)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.data.check import check_suite_data

    suite = load_suite(args.suite)
    reports = check_suite_data(suite, args.data_root)
    for report in reports:
        print(report.line())
    if args.verify:
        print_archive_checks(suite, data.fetch_options(args).archives_dir)
    return 0 if all(r.complete for r in reports) else 1


def print_archive_checks(suite, archives_dir: Path) -> None:
    from benchmark.data import dataset_spec
    from benchmark.data.fetch import verify_archives

    print(f"\narchives in {archives_dir}:")
    for name, options in suite.datasets.items():
        for line in verify_archives(dataset_spec(name, options), archives_dir):
            print(f"{name:14s} {line}")
