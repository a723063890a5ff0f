"""`table`: stored results in the paper's layout, or a published table beside ours (`--compare`)."""

from __future__ import annotations

import argparse

from benchmark.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("table", parents=[common.plugins(), common.results(), common.suite(default=None)],
                            help="render stored results: a table per protocol with CIs and a summary "
                                 "(--wide: the paper's layout)")
    parser.add_argument("--wide", action="store_true",
                        help="the paper's layout: one row per encoder, every protocol x dataset column")
    parser.add_argument("--format", default="markdown", choices=("markdown", "csv", "latex"),
                        help="of the wide layout (csv and latex imply --wide)")
    parser.add_argument("--compare", default=None, metavar="REFERENCE",
                        help="show a published table (see results/reference/) and our cells next to it")
    parser.add_argument("--models", default=None, help="model list naming our encoders as the reference does "
                                                       "(suites/models/NAME.yaml; default: the reference's name)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.results import ResultsStore
    from benchmark.results.report import render_report
    from benchmark.results.table import render, results_table, skip_notes

    if args.compare:
        return show_comparison(args)
    store = ResultsStore(common.existing_results(args.results))
    rows, skips = store.latest(args.suite), store.skips(args.suite)
    if args.wide or args.format != "markdown" or rows.empty:
        print(render(results_table(rows, skips), args.format))
        print(skip_notes(skips))
    else:
        print(render_report(rows, skips))
    return 0


def show_comparison(args: argparse.Namespace) -> int:
    """The published table as published; ours laid out in the very same columns (empty where we have no
    cell); then each matched cell with the difference."""
    from benchmark.models import reference_names
    from benchmark.results import ResultsStore
    from benchmark.results.reference import (by_registered_protocol, compare, labelled, load_reference, value_notes,
                                             with_averages)
    from benchmark.results.table import render, results_table

    reference = load_reference(args.compare)
    published = results_table(labelled(reference))
    print(f"Published ({reference['citation'].iloc[0]}):\n")
    print(render(published, args.format, digits=2))
    notes = value_notes(reference)
    if notes:
        print("\nWhere these published values come from (not the paper's own protocol):\n")
        print("\n".join(f"- {line}" for line in notes))
    if not args.results.exists():
        print(f"\n(no results store at {args.results}: nothing of ours to compare)")
        return 0
    ours = ResultsStore(args.results).latest(args.suite)
    names = reference_names(args.models or args.compare, ours["encoder"])
    matched = compare(ours, reference, names)
    if matched.empty:
        print(f"\nNone of our encoders in {args.results} is named in the reference (see --models).")
        return 0
    mine = by_registered_protocol(ours, reference["protocol"]).assign(encoder=ours["encoder"].map(names))
    mine = labelled(with_averages(mine))
    mine = mine[mine["encoder"].isin(set(reference["encoder"]))]
    laid_out = results_table(mine).reindex(columns=published.columns)
    print(f"\nOurs, in the published layout ({int(laid_out.notna().any().sum())} of {laid_out.shape[1]} columns "
          f"with a value of ours):\n")
    print(render(laid_out, args.format, digits=2))
    print("\nOurs vs published:\n")
    print(matched.to_markdown(index=False, floatfmt=".2f"))
    return 0
