"""`suite distill`: a lite suite whose few cells rank encoders as a whole results table does."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import common
from benchmark.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("suite", help="make suites from results: `suite distill`")
    actions = parser.add_subparsers(dest="suite_command", required=True)
    distill = actions.add_parser("distill", parents=[common.plugins(), common.results("our results store to read")],
                                 help="the N cells of a suite that best keep a table's ranking of encoders")
    source = distill.add_mutually_exclusive_group()
    source.add_argument("--reference", default=None, metavar="NAME",
                        help="a published table (results/reference/NAME.csv) instead of our store")
    distill.add_argument("--suite", default=None, help="the suite whose cells to choose (default: the reference's name)")
    distill.add_argument("--cells", type=common.positive_int, required=True, metavar="N", help="how many cells to keep")
    distill.add_argument("--out", type=Path, default=None, help="the suite YAML to write (default SUITE-lite.yaml)")
    distill.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.lite import distill_suite, lite_yaml, published_wide, stored_wide
    from benchmark.results import ResultsStore

    if not (args.suite or args.reference):
        raise UserError("name the suite to distil: --suite NAME (with our results store) or --reference NAME")
    suite = load_suite(args.suite or args.reference)
    if args.reference:
        wide, lower, source = published_wide(suite, args.reference), set(), f"results/reference/{args.reference}.csv"
    else:
        rows = ResultsStore(common.existing_results(args.results)).latest(suite.name)
        (wide, lower), source = stored_wide(suite, rows), f"{args.results} (suite {suite.name})"
    result, dropped = distill_suite(suite, wide, args.cells, lower)
    if dropped:
        print(f"left out {', '.join(dropped)}: some encoder has no value there")
    out = args.out or Path(f"{suite.name}-lite.yaml")
    out.write_text(lite_yaml(suite, result, source, len(wide)))
    print(f"wrote {out}: {len(result.columns)} cells, Kendall tau {result.tau:.3f} (held out: mean "
          f"{result.held_out_tau:.3f}, lowest {result.held_out_min:.3f}), {result.cost_fraction:.2%} of the cost")
    for column, dataset in result.columns:
        print(f"  {column}·{dataset}")
    return 0
