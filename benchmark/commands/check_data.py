"""`check-data`: which dataset roots of a suite are present and complete."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check-data", parents=[common.plugins(), common.suite(default="ericsson2021")],
                            help="which dataset roots of a suite are present and complete")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.data.check import check_suite_data

    reports = check_suite_data(load_suite(args.suite), args.data_root)
    for report in reports:
        print(report.line())
    return 0 if all(r.complete for r in reports) else 1
