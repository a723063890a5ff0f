"""`plan`: the run's extraction and result tasks, and which are still pending."""

from __future__ import annotations

import argparse

from benchmark.commands import common
from benchmark.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plan", parents=[common.plugins(), common.models(), common.suite(),
                                             common.protocols(), common.results(), common.run()],
                            help="list the run's extraction and result tasks, and which are still pending")
    parser.add_argument("--all", action="store_true", help="also list the tasks that are done")
    parser.add_argument("--why", nargs=3, metavar=("MODEL", "DATASET", "PROTOCOL"),
                        help="print one cell's key fields and which of them differ from its newest stored row")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.pipeline.runner import Evaluator, explain

    evaluator = Evaluator(load_suite(args.suite), common.run_options(args))
    if args.why:
        print("\n".join(explain(evaluator, *args.why)))
        return 0
    if not args.model:
        raise UserError("plan needs --model SPEC (repeatable), or --why MODEL DATASET PROTOCOL")
    tasks = evaluator.plan(args.model)
    for stage in ("extract", "evaluate"):
        staged = [t for t in tasks if t.stage == stage]
        print(f"{stage}: {sum(not t.done for t in staged)} pending, {sum(t.done for t in staged)} done")
    for task in tasks:
        if args.all or not task.done:
            print(f"  {'done   ' if task.done else 'pending'}  {task.stage:8s} {task.encoder}  {task.dataset}  "
                  f"{task.what}  {task.key[:12]}")
    return 0
