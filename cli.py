"""transferbench command line: a thin layer over the library (`benchmark.runner.evaluate` & co).

Precedence: command-line options > suite YAML > built-in defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.errors import UserError

LIST_KINDS = ("encoders", "datasets", "suites", "protocols", "methods")


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
    evaluate.add_argument("--model", action="append", default=[], help="SOURCE:NAME[@WEIGHTS_FILE]; repeatable")
    evaluate.add_argument("--models", default=None, metavar="LIST",
                          help="every model of suites/models/LIST.yaml, weights from --weights-dir")
    evaluate.add_argument("--weights-dir", type=Path, default=Path("."), help="where --models finds weights files")
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

    pre = sub.add_parser("pretrain", help="pretrain a backbone with a method; writes a checkpoint for checkpoint:PATH")
    pre.add_argument("--method", required=True, help="see `ls methods`")
    pre.add_argument("--dataset", default="fashion_mnist", help="source dataset (its train split)")
    pre.add_argument("--arch", default="resnet18", help="timm architecture")
    pre.add_argument("--arch-kwarg", action="append", default=[], metavar="KEY=VALUE",
                     help="timm.create_model argument, e.g. channels=[32,64,128,256]; repeatable")
    pre.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                     help="method hyperparameter, e.g. temperature=0.5; repeatable")
    pre.add_argument("--small-stem", action="store_true", help="3x3 stride-1 first conv for 32-64 px inputs")
    pre.add_argument("--input-size", type=int, default=32)
    pre.add_argument("--epochs", type=int, default=10)
    pre.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the data")
    pre.add_argument("--batch-size", type=int, default=256)
    pre.add_argument("--lr", type=float, default=1e-3)
    pre.add_argument("--train-subset", type=int, default=None, help="a seeded stratified subset of the images")
    pre.add_argument("--seed", type=int, default=0)
    pre.add_argument("--out", type=Path, required=True, help="checkpoint path (an interrupted run resumes)")
    pre.add_argument("--data-root", type=Path, default=None)
    pre.add_argument("--device", default="cpu")

    rep = sub.add_parser("reproduce", help="pretrain every method of a suite's study, evaluate them, print the table")
    rep.add_argument("--suite", default="offline")
    rep.add_argument("--budget", type=float, default=1.0, help="scale the training steps (0.5: half as long)")
    rep.add_argument("--out-dir", type=Path, default=Path("results/pretrained"), help="where checkpoints go")
    rep.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    add_run_options(rep)

    table = sub.add_parser("table", help="render stored results: one row per encoder, columns by protocol")
    table.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    table.add_argument("--suite", default=None, help="only rows of this suite")
    table.add_argument("--format", default="markdown", choices=("markdown", "csv", "latex"))
    table.add_argument("--compare", default=None, metavar="REFERENCE",
                       help="show a published table (results/reference/REFERENCE.csv) and our cells next to it")
    table.add_argument("--models", default=None, help="model list naming our encoders as the reference does "
                                                      "(suites/models/NAME.yaml; default: the reference's name)")

    board = sub.add_parser("leaderboard", help="write leaderboard CSVs, Markdown, HTML, correlations and plots")
    board.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    board.add_argument("--suite", default=None, help="rows of this suite (default: all)")
    board.add_argument("--reference", default=None, metavar="NAME", help="a published table instead of our store")
    board.add_argument("--correlate-with", default=None, metavar="PROTOCOL·DATASET",
                       help="reference column for the correlation analysis, e.g. linear·imagenet")
    board.add_argument("--out", type=Path, default=Path("results/leaderboard"))

    pair = sub.add_parser("compare", help="two encoders cell by cell, with paired-test p-values")
    pair.add_argument("encoders", nargs=2, metavar="ENCODER")
    pair.add_argument("--results", type=Path, default=Path("results/runs.sqlite"))
    pair.add_argument("--suite", default=None)

    check = sub.add_parser("check-data", help="which dataset roots of a suite are present and complete")
    check.add_argument("--suite", default="ericsson2021")
    check.add_argument("--data-root", type=Path, default=None)
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
    from benchmark.training import METHODS

    if args.kind == "datasets":
        for name in DATASETS.names():
            spec = DATASETS.get(name)
            print(f"{name:16s} {spec.num_classes:4d} classes  {spec.metric:15s} {spec.description}")
        return 0
    names = {"encoders": ENCODER_SOURCES.names, "suites": available_suites, "protocols": PROTOCOLS.names,
             "methods": METHODS.names}[args.kind]()
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


def print_run_table(results: Path, suite_name: str, encoders: list[str]) -> None:
    """The stored table of one suite, restricted to the encoders this run evaluated, with skip notes."""
    from benchmark.results import ResultsStore
    from benchmark.results.table import render, results_table, skip_notes

    store = ResultsStore(results)
    latest, skips = store.latest(suite_name), store.skips(suite_name)
    latest, skips = latest[latest["encoder"].isin(encoders)], skips[skips["encoder"].isin(encoders)]
    print(render(results_table(latest, skips)))
    print(skip_notes(skips))


def cmd_evaluate(args: argparse.Namespace) -> int:
    from benchmark import distributed
    from benchmark.config import load_suite
    from benchmark.runner import evaluate

    suite = load_suite(args.suite)
    if args.models:
        from benchmark.models import model_specs

        args.model = [*args.model, *model_specs(args.models, args.weights_dir)]
    if not args.model:
        raise UserError("name at least one encoder: --model SPEC or --models LIST --weights-dir DIR")
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
        print_run_table(args.results, suite.name, report.encoders)
    for failure in report.failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if report.failures else 0


def cmd_table(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.table import render, results_table, skip_notes

    if not args.results.exists():
        raise UserError(f"no results store at {args.results}; run `transferbench evaluate` first or pass --results")
    if args.compare:
        return show_comparison(args)
    store = ResultsStore(args.results)
    skips = store.skips(args.suite)
    print(render(results_table(store.latest(args.suite), skips), args.format))
    print(skip_notes(skips))
    return 0


def show_comparison(args: argparse.Namespace) -> int:
    """The published table as published, then our cells that match it, with the difference."""
    from benchmark.models import reference_names
    from benchmark.results import ResultsStore
    from benchmark.results.reference import compare, load_reference
    from benchmark.results.table import render, results_table

    reference = load_reference(args.compare)
    print(f"Published ({reference['citation'].iloc[0]}):\n")
    print(render(results_table(reference), args.format, digits=2))
    if not args.results.exists():
        print(f"\n(no results store at {args.results}: nothing of ours to compare)")
        return 0
    ours = ResultsStore(args.results).latest(args.suite)
    matched = compare(ours, reference, reference_names(args.models or args.compare, ours["encoder"]))
    if matched.empty:
        print(f"\nNone of our encoders in {args.results} is named in the reference (see --models).")
    else:
        print("\nOurs vs published:\n")
        print(matched.to_markdown(index=False, floatfmt=".2f"))
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.leaderboard import write_leaderboard
    from benchmark.results.reference import load_reference

    if args.reference:
        rows, title, version = load_reference(args.reference), f"{args.reference} (published)", None
    else:
        if not args.results.exists():
            raise UserError(f"no results store at {args.results}; run `transferbench evaluate` first or pass --results")
        rows, title = ResultsStore(args.results).latest(args.suite), args.suite or "all suites"
        version = suite_version(args.suite)
    for path in write_leaderboard(rows, args.out, title, args.correlate_with, version):
        print(f"wrote {path}")
    return 0


def suite_version(name: str | None) -> int | None:
    """The version of a suite by name ("offline:reproduce" is the offline suite's study), if it loads."""
    from benchmark.config import load_suite

    try:
        return load_suite(name.split(":")[0]).version if name else None
    except UserError:
        return None


def cmd_compare(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.stats import compare_encoders

    table = compare_encoders(ResultsStore(args.results).latest(args.suite), *args.encoders)
    if table.empty:
        raise UserError(f"no cell holds results of both {args.encoders[0]!r} and {args.encoders[1]!r}")
    print(table.to_markdown(index=False, floatfmt=".4g"))
    return 0


def cmd_check_data(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.data.check import check_suite_data

    reports = check_suite_data(load_suite(args.suite), args.data_root)
    for report in reports:
        print(report.line())
    return 0 if all(r.complete for r in reports) else 1


def key_values(pairs: list[str], what: str) -> dict[str, Any]:
    """KEY=VALUE options, each VALUE read as YAML (numbers, lists, booleans)."""
    import yaml

    parsed = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"{what} must look like KEY=VALUE, got {pair!r}")
        parsed[key] = yaml.safe_load(value)
    return parsed


def cmd_pretrain(args: argparse.Namespace) -> int:
    from benchmark.training.loop import PretrainConfig, pretrain

    config = PretrainConfig(method=args.method, out=args.out, dataset=args.dataset, arch=args.arch,
                            arch_kwargs=key_values(args.arch_kwarg, "--arch-kwarg"), small_stem=args.small_stem,
                            input_size=args.input_size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed, train_subset=args.train_subset,
                            method_params=key_values(args.param, "--param"), data_root=args.data_root,
                            device=args.device)
    path = pretrain(config)
    print(f"wrote {path}; evaluate it with: python3 cli.py evaluate --model checkpoint:{path}")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.training.study import reproduce

    suite = load_suite(args.suite)
    report, failures = reproduce(suite, run_options(args), args.out_dir, args.budget)
    print(f"\n{suite.name} study: {len(report.encoders)} encoders, {len(report.rows)} results in {report.seconds:.1f}s\n")
    print_run_table(args.results, f"{suite.name}:reproduce", report.encoders)
    for failure in [*failures, *report.failures]:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures or report.failures else 0


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


COMMANDS = {"ls": cmd_ls, "extract": cmd_extract, "evaluate": cmd_evaluate, "table": cmd_table, "plan": cmd_plan,
            "pretrain": cmd_pretrain, "reproduce": cmd_reproduce, "leaderboard": cmd_leaderboard,
            "compare": cmd_compare, "check-data": cmd_check_data}


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
