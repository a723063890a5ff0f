"""`evaluate`: encoders x a suite -> stored results, then the run's table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.commands import common, data
from benchmark.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("evaluate", parents=[common.plugins(), common.models(), common.suite(),
                                                 common.protocols(), common.results(), common.run(),
                                                 data.archive_flags()],
                            help="evaluate encoders on a suite and print the results table")
    parser.add_argument("--models", default=None, metavar="LIST",
                        help="every model of the model list LIST (suites/models/LIST.yaml), weights from --weights-dir")
    parser.add_argument("--weights-dir", type=Path, default=Path("."), help="where --models finds weights files")
    parser.add_argument("--series", action="append", default=[], metavar="SPEC",
                        help="a training run's checkpoints, SOURCE:ARCH@GLOB or checkpoint:GLOB (a glob or a folder): "
                             "each evaluated once as <series>@step<N>, step from the file name; repeatable")
    parser.add_argument("--series-name", default=None, help="the series' name (default: the checkpoints' folder)")
    parser.add_argument("--download", action="store_true",
                        help="first fetch the suite's datasets missing from --data-root (as `data fetch`)")
    add_executor_flags(parser)
    parser.set_defaults(run=run)


def add_executor_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jobs", "run as separate jobs through submitit (default: in this process)")
    group.add_argument("--executor", choices=("local", "slurm"), default=None,
                       help="local: subprocesses here; slurm: one SLURM job per (encoder, dataset, stage)")
    group.add_argument("--jobs-dir", type=Path, default=Path("results/jobs"), help="submitit logs and pickles")
    group.add_argument("--timeout-min", type=common.positive_int, default=60)
    group.add_argument("--cpus-per-task", type=common.positive_int, default=2)
    group.add_argument("--gpus-per-node", type=common.non_negative_int, default=0)
    group.add_argument("--mem-gb", type=common.positive_int, default=16)
    group.add_argument("--partition", default=None, help="SLURM partition")


def model_specs(args: argparse.Namespace) -> list[str]:
    specs = list(args.model)
    if args.models:
        from benchmark.models import model_specs as listed

        specs += listed(args.models, args.weights_dir)
    if args.series:
        from benchmark.series import expand

        specs += [member for series in args.series for member in expand(series, args.series_name)]
    if not specs:
        raise UserError("name at least one encoder: --model SPEC, --models LIST --weights-dir DIR or --series SPEC")
    return specs


def run(args: argparse.Namespace) -> int:
    from benchmark import distributed
    from benchmark.config import load_suite
    from benchmark.pipeline.runner import evaluate

    if args.series and args.executor:
        raise UserError("--series runs in this process (each checkpoint is loaded when its turn comes); drop "
                        "--executor, or pass the checkpoints as --model specs")
    suite, specs = load_suite(args.suite), model_specs(args)
    if args.download and distributed.current().is_main:
        fetch_missing(args, suite)
    if args.executor:
        report = run_as_jobs(args, specs, suite)
    else:
        report = evaluate(specs, suite, common.run_options(args))
        if not distributed.current().is_main:
            return 1 if report.failures else 0  # under torchrun rank 0 prints the summary
    computed = len(report.rows) - report.reused
    print(f"\n{suite.name}: {len(report.rows)} results in {report.seconds:.1f}s ({computed} computed, {report.reused} "
          f"reused from the results store); feature cache: {report.cache_hits} hits, {report.cache_misses} extracted "
          f"({'nothing extracted: cache used' if report.cache_misses == 0 else 'new entries written'})\n")
    if report.rows or report.skipped:
        common.print_run_table(args.results, suite.name, report.encoders)
    for failure in report.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


def fetch_missing(args: argparse.Namespace, suite) -> None:
    """`--download`: the datasets without a root yet; one that needs a manual step is reported and its
    cells fail as a missing dataset's do, while the others run."""
    from benchmark.data.fetch import fetch_suite, missing_with_recipe

    options = data.fetch_options(args)
    missing = missing_with_recipe(suite.datasets, options.data_root)
    if missing:
        fetch_suite(missing, options)
        print()


def run_as_jobs(args: argparse.Namespace, specs: list[str], suite):
    from benchmark.pipeline.executor import ExecutorOptions, run_as_jobs as submit

    jobs = ExecutorOptions(kind=args.executor, folder=args.jobs_dir, timeout_min=args.timeout_min,
                           cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_node,
                           mem_gb=args.mem_gb, partition=args.partition)
    return submit(specs, suite, common.run_options(args), jobs)
