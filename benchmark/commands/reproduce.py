"""`reproduce`: pretrain every method of a suite's study, evaluate them, print the table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("reproduce", parents=[common.plugins(), common.suite(), common.results(), common.run()],
                            help="pretrain every method of a suite's study, evaluate them, print the table")
    parser.add_argument("--budget", type=common.positive_fraction, default=1.0,
                        help="scale the training steps (0.5: half as long); a finite number > 0")
    parser.add_argument("--out-dir", type=Path, default=Path("results/pretrained"), help="where checkpoints go")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.study import reproduce

    suite = load_suite(args.suite)
    report, failures = reproduce(suite, common.run_options(args), args.out_dir, args.budget)
    print(f"\n{suite.name} study: {len(report.encoders)} encoders, {len(report.rows)} results in {report.seconds:.1f}s\n")
    common.print_run_table(args.results, f"{suite.name}:reproduce", report.encoders)
    for failure in [*failures, *report.failures]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures or report.failures else 0
