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
    parser.add_argument("--estimate", action="store_true",
                        help="predicted wall time per cell, per protocol and in total on --device, from the "
                             "encoder's measured throughput (cached) and the official split sizes; needs no data")
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
    if args.estimate:
        for spec in args.model:
            print("\n".join(estimate_lines(args, evaluator.suite, spec, args.all)))
        return 0
    tasks = evaluator.plan(args.model)
    for stage in ("extract", "evaluate"):
        staged = [t for t in tasks if t.stage == stage]
        print(f"{stage}: {sum(not t.done for t in staged)} pending, {sum(t.done for t in staged)} done")
    for task in tasks:
        if args.all or not task.done:
            print(f"  {'done   ' if task.done else 'pending'}  {task.stage:8s} {task.encoder}  {task.dataset}  "
                  f"{task.what}  {task.key[:12]}")
    return 0


def estimate_lines(args: argparse.Namespace, suite, spec: str, every_cell: bool) -> list[str]:
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.estimate import cell_estimates, with_protocol_times

    encoder = load_encoder(spec)
    lines, rates = throughput_lines(args, suite, spec)
    rows = stored_rows(args.results, suite.name)
    cells = with_protocol_times(cell_estimates(suite, rates, encoder.capabilities), rows, encoder.label)
    for protocol in dict.fromkeys(c.column for c in cells):
        mine = [c for c in cells if c.column == protocol]
        lines.append(f"  {protocol:16s} {len(mine):3d} cells  {duration(sum(c.total for c in mine)):>9s}  (encoder "
                     f"{duration(sum(c.seconds for c in mine))}, protocol {duration(sum(c.protocol_seconds for c in mine))})")
    timed = "other encoders' stored rows" if rows is not None and not rows.empty else "nothing: the store is empty"
    lines.append(f"  {'total':16s} {len(cells):3d} cells  {duration(sum(c.total for c in cells)):>9s}  (each extraction "
                 f"counted at the first column that reads it; protocol time from {timed}; decoding not modelled)")
    measured = measured_seconds(rows, encoder.label)
    lines += [f"    {c.column}·{c.dataset}: {c.extraction_images:,} images extracted, {c.training_images:,} trained, "
              f"{c.input_size} px -> {duration(c.total)}" + error_note(c, measured) for c in cells if every_cell]
    return lines


def throughput_lines(args: argparse.Namespace, suite, spec: str) -> tuple[list[str], dict]:
    from benchmark.cache import default_cache_dir
    from benchmark.devices import Precision
    from benchmark.pipeline.estimate import cached_throughput, fine_tune_batch, suite_input_sizes

    lines, rates = [f"estimate: {spec} on {args.device}, suite {suite.name}"], {}
    for size in suite_input_sizes(suite):
        rate, new = cached_throughput(args.cache_dir or default_cache_dir(), spec, args.device, size, args.batch_size,
                                      fine_tune_batch(suite), Precision(args.precision))
        training = f"{rate.train_per_s:,.1f} img/s" if rate.train_per_s else "none (nothing to train)"
        lines.append(f"  {size} px on {rate.device}: extraction {rate.extract_per_s:,.1f} img/s, training {training} "
                     f"({'measured now' if new else 'measured ' + rate.measured + ', cached'})")
        rates[size] = rate
    return lines, rates


def stored_rows(results, suite_name: str):
    from benchmark.results import ResultsStore

    return ResultsStore(results).latest(suite_name) if results.is_file() else None


def measured_seconds(rows, label: str) -> dict[tuple[str, str], float]:
    """Seconds our store measured per (column, dataset) for this encoder."""
    if rows is None or rows.empty:
        return {}
    mine = rows[rows["encoder"] == label]
    return dict(zip(zip(mine["protocol"], mine["dataset"]), mine["seconds"]))


def error_note(cell, measured: dict[tuple[str, str], float]) -> str:
    """For a training cell the store measured, how far the estimate was (a feature cell's stored seconds
    time its protocol, not the extraction the estimate models)."""
    seconds = measured.get((cell.column, cell.dataset))
    if seconds is None or not cell.training_images:
        return ""
    return f" (measured {duration(seconds)}: estimate {100 * (cell.total / seconds - 1):+.0f}%)"


def duration(seconds: float) -> str:
    if seconds != seconds:  # NaN
        return "n/a"
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"
