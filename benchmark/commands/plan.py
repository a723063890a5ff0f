"""`plan`: the run's extraction and result tasks, and which are still pending."""

from __future__ import annotations

import argparse

from benchmark.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("plan", parents=[common.plugins(), common.models(required=True), common.suite(),
                                             common.protocols(), common.results(), common.run()],
                            help="list the run's extraction and result tasks, and which are still pending")
    parser.add_argument("--all", action="store_true", help="also list the tasks that are done")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.pipeline.runner import Evaluator

    tasks = Evaluator(load_suite(args.suite), common.run_options(args)).plan(args.model)
    for stage in ("extract", "evaluate"):
        staged = [t for t in tasks if t.stage == stage]
        print(f"{stage}: {sum(not t.done for t in staged)} pending, {sum(t.done for t in staged)} done")
    for task in tasks:
        if args.all or not task.done:
            print(f"  {'done   ' if task.done else 'pending'}  {task.stage:8s} {task.encoder}  {task.dataset}  "
                  f"{task.what}  {task.key[:12]}")
    return 0
