"""transferbench command line: a thin layer over the library (`benchmark.runner.evaluate` & co).

Precedence: command-line options > suite YAML > built-in defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import numpy as np

from benchmark.errors import UserError

LIST_KINDS = ("encoders", "datasets", "suites", "protocols")


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature cache (default $TRANSFERBENCH_CACHE or ~/.cache/transferbench)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="datasets live in DIR/<name> (default $TRANSFERBENCH_DATA)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def add_executor_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("jobs", "run as separate jobs through submitit (default: in this process)")
    group.add_argument("--executor", choices=("local", "slurm"), default=None,
                       help="local: subprocesses here; slurm: one SLURM job per (encoder, dataset, stage)")
    group.add_argument("--jobs-dir", type=Path, default=Path("results/jobs"), help="submitit logs and pickles")
    group.add_argument("--timeout-min", type=int, default=60)
    group.add_argument("--cpus-per-task", type=int, default=2)
    group.add_argument("--gpus-per-node", type=int, default=0)
    group.add_argument("--mem-gb", type=int, default=16)
    group.add_argument("--partition", default=None, help="SLURM partition")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="transferbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    ls = sub.add_parser("ls", help="list registered encoders sources, datasets, suites or protocols")
    ls.add_argument("kind", choices=LIST_KINDS)

    extract = sub.add_parser("extract", help="extract (cached) features of one split; optionally save an npz")
    extract.add_argument("--model", required=True, help="SOURCE:NAME[@WEIGHTS_FILE]")
    extract.add_argument("--dataset", required=True)
    extract.add_argument("--split", default="train")
    extract.add_argument("--suite", default=None, help="take preprocessing and dataset options from this suite")
    extract.add_argument("--out", type=Path, default=None, help="write features and labels to this .npz")
    add_run_options(extract)

    evaluate = sub.add_parser("evaluate", help="evaluate encoders on a suite and print the results table")
    evaluate.add_argument("--model", action="append", required=True, help="SOURCE:NAME[@WEIGHTS_FILE]; repeatable")
    evaluate.add_argument("--suite", default="offline", help="suite name in suites/ or a YAML path")
    evaluate.add_argument("--protocol", action="append", default=[], help="run only this protocol; repeatable")
    evaluate.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    evaluate.add_argument("--recompute", action="store_true",
                          help="rerun protocols whose results are already stored (features still come from cache)")
    add_run_options(evaluate)
    add_executor_options(evaluate)

    plan = sub.add_parser("plan", help="list the run's extraction and result tasks, and which are still pending")
    plan.add_argument("--model", action="append", required=True, help="SOURCE:NAME[@WEIGHTS_FILE]; repeatable")
    plan.add_argument("--suite", default="offline", help="suite name in suites/ or a YAML path")
    plan.add_argument("--protocol", action="append", default=[], help="only this protocol; repeatable")
    plan.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    plan.add_argument("--recompute", action="store_true", help="plan as if no result were stored")
    plan.add_argument("--all", action="store_true", help="also list the tasks that are done")
    add_run_options(plan)

    table = sub.add_parser("table", help="render stored results: one row per encoder, columns by protocol")
    table.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    table.add_argument("--suite", default=None, help="only rows of this suite")
    table.add_argument("--format", default="markdown", choices=("markdown", "csv", "latex"))
    return parser


def run_options(args: argparse.Namespace):
    from benchmark.distributed import rank_device
    from benchmark.runner import RunOptions

    return RunOptions(cache_dir=args.cache_dir, data_root=args.data_root, batch_size=args.batch_size,
                      workers=args.workers, device=rank_device(args.device),
                      results_path=getattr(args, "results", RunOptions.results_path),
                      protocols=tuple(getattr(args, "protocol", ()) or ()),
                      recompute=getattr(args, "recompute", False))


def cmd_ls(args: argparse.Namespace) -> int:
    from benchmark.config import available_suites
    from benchmark.data import DATASETS
    from benchmark.encoders import ENCODER_SOURCES
    from benchmark.protocols import PROTOCOLS

    if args.kind == "datasets":
        for name in DATASETS.names():
            spec = DATASETS.get(name)
            print(f"{name:16s} {spec.num_classes:4d} classes  {spec.metric:15s} {spec.description}")
        return 0
    names = {"encoders": ENCODER_SOURCES.names, "suites": available_suites, "protocols": PROTOCOLS.names}[args.kind]()
    print("\n".join(names))
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    from benchmark import distributed
    from benchmark.cache import FeatureCache
    from benchmark.config import Suite, load_suite
    from benchmark.encoders import load_encoder
    from benchmark.runner import cached_features, plan_dataset

    suite = load_suite(args.suite) if args.suite else Suite(name="extract")
    main_rank = distributed.init_from_env(args.device).is_main  # under torchrun each rank extracts a shard
    say = print if main_rank else (lambda *_: None)
    encoder = load_encoder(args.model)
    plan = plan_dataset(args.dataset, suite.datasets.get(args.dataset, {}), args.data_root)
    plan.spec.check_split(args.split)
    preprocessing = encoder.preprocessing.with_overrides(suite.preprocessing_for(args.dataset))
    splits, keys, hits = cached_features(FeatureCache(args.cache_dir), encoder, preprocessing, plan, run_options(args),
                                         only=(args.split,))
    features = splits[args.split]
    say(f"{plan.spec.name}/{args.split}: features {features.x.shape} {'from the cache' if hits else 'extracted'}, "
        f"cache key {keys[args.split]}")
    if args.out and main_rank:
        np.savez(args.out, features=np.asarray(features.x), labels=np.asarray(features.y))
        say(f"wrote {args.out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark import distributed
    from benchmark.config import load_suite
    from benchmark.results import ResultsStore
    from benchmark.results.table import render, results_table, skip_notes
    from benchmark.runner import evaluate

    suite = load_suite(args.suite)
    if args.executor:
        from benchmark.executor import ExecutorOptions, run_as_jobs

        jobs = ExecutorOptions(kind=args.executor, folder=args.jobs_dir, timeout_min=args.timeout_min,
                               cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_node,
                               mem_gb=args.mem_gb, partition=args.partition)
        report = run_as_jobs(args.model, suite, run_options(args), jobs)
    else:
        report = evaluate(args.model, suite, run_options(args))
        if not distributed.current().is_main:
            return 1 if report.failures else 0  # under torchrun rank 0 prints the summary
    computed = len(report.rows) - report.reused
    print(f"\n{suite.name}: {len(report.rows)} results in {report.seconds:.1f}s ({computed} computed, {report.reused} "
          f"reused from the results store); feature cache: {report.cache_hits} hits, {report.cache_misses} extracted "
          f"({'nothing extracted: cache used' if report.cache_misses == 0 else 'new entries written'})\n")
    if report.rows or report.skipped:
        store = ResultsStore(args.results)
        encoders = set(report.encoders)
        latest, skips = store.latest(suite.name), store.skips(suite.name)
        latest, skips = latest[latest["encoder"].isin(encoders)], skips[skips["encoder"].isin(encoders)]
        print(render(results_table(latest, skips)))
        print(skip_notes(skips))
    for failure in report.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


def cmd_table(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.table import render, results_table, skip_notes

    if not args.results.exists():
        raise UserError(f"no results store at {args.results}; run `transferbench evaluate` first or pass --results")
    store = ResultsStore(args.results)
    skips = store.skips(args.suite)
    print(render(results_table(store.latest(args.suite), skips), args.format))
    print(skip_notes(skips))
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.runner import Evaluator

    suite = load_suite(args.suite)
    tasks = Evaluator(suite, run_options(args)).plan(args.model)
    for stage in ("extract", "evaluate"):
        staged = [t for t in tasks if t.stage == stage]
        print(f"{stage}: {sum(not t.done for t in staged)} pending, {sum(t.done for t in staged)} done")
    for task in tasks:
        if args.all or not task.done:
            print(f"  {'done   ' if task.done else 'pending'}  {task.stage:8s} {task.encoder}  {task.dataset}  "
                  f"{task.what}  {task.key[:12]}")
    return 0


COMMANDS = {"ls": cmd_ls, "extract": cmd_extract, "evaluate": cmd_evaluate, "table": cmd_table, "plan": cmd_plan}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("TRANSFERBENCH_LOG", "WARNING"), format="%(message)s")
    try:
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
