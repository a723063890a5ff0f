"""`leaderboard`: CSV, Markdown, HTML, correlations and plots of stored (or published) results."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import common
from benchmark.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("leaderboard", parents=[common.plugins(), common.results(), common.suite(default=None)],
                            help="write leaderboard CSVs, Markdown, HTML, correlations and plots")
    parser.add_argument("--reference", default=None, metavar="NAME", help="a published table instead of our store")
    parser.add_argument("--correlate-with", default=None, metavar="PROTOCOL·DATASET",
                        help="reference column for the correlation analysis, e.g. linear·imagenet")
    parser.add_argument("--series", action="store_true",
                        help="checkpoint series (<series>@step<N> encoders): each cell's metric against the step "
                             "with its CI band, and the best checkpoint per cell with a paired test of its lead")
    parser.add_argument("--out", type=Path, default=Path("results/leaderboard"))
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.leaderboard import write_leaderboard
    from benchmark.results.reference import labelled, load_reference

    if args.out.exists() and not args.out.is_dir():
        raise UserError(f"--out {args.out} is a file; the leaderboard is a directory of files: name a directory")
    if args.series:
        return write_series_outputs(args)
    if args.reference:
        rows, title, version = labelled(load_reference(args.reference)), f"{args.reference} (published)", None
    else:
        rows = ResultsStore(common.existing_results(args.results)).latest(args.suite)
        title, version = args.suite or "all suites", suite_version(args.suite)
    for path in write_leaderboard(rows, args.out, title, args.correlate_with, version):
        print(f"wrote {path}")
    return 0


def suite_version(name: str | None) -> int | None:
    """The version of a suite by name (a study's suite name is "<suite>:reproduce"), if it loads."""
    from benchmark.config import load_suite
    from benchmark.study import STUDY_SUFFIX

    try:
        return load_suite(name.removesuffix(STUDY_SUFFIX)).version if name else None
    except UserError:
        return None


def write_series_outputs(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.series import best_checkpoint_lines, write_series

    rows = ResultsStore(common.existing_results(args.results)).latest(args.suite)
    for line in best_checkpoint_lines(rows):
        print(line)
    for path in write_series(rows, args.out):
        print(f"wrote {path}")
    return 0
