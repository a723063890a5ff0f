"""`compare`: two encoders cell by cell, with paired-test p-values."""

from __future__ import annotations

import argparse

from benchmark.commands import common
from benchmark.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("compare", parents=[common.plugins(), common.results(), common.suite(default=None)],
                            help="two encoders cell by cell, with paired-test p-values")
    parser.add_argument("encoders", nargs=2, metavar="ENCODER")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.stats import compare_encoders

    table = compare_encoders(ResultsStore(common.existing_results(args.results)).latest(args.suite), *args.encoders)
    if table.empty:
        raise UserError(f"no cell holds results of both {args.encoders[0]!r} and {args.encoders[1]!r}")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    return 0
