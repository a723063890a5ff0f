"""`data fetch`: download, verify and lay out a suite's datasets (benchmark.data.fetch)."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="fetch a suite's datasets from their official archives")
    actions = parser.add_subparsers(dest="data_command", required=True)
    fetch = actions.add_parser("fetch", parents=[common.plugins(), common.suite(default="ericsson2021"), data_root(),
                                                 archive_flags()],
                               help="download, verify and unpack each dataset into DATA_ROOT/<name>")
    fetch.add_argument("--only", nargs="+", default=[], metavar="NAME", help="only these datasets of the suite")
    fetch.add_argument("--dry-run", action="store_true",
                       help="print what would be fetched, from where, how large, and what needs a manual step")
    fetch.set_defaults(run=run, interrupted="every dataset reported above is in place; a download keeps what it "
                                            "received in <file>.part and an unpacking leaves nothing behind: run the "
                                            "same command again to go on from there")


def data_root() -> argparse.ArgumentParser:
    flags = common.parent()
    flags.add_argument("--data-root", type=Path, default=None,
                       help="datasets live in DIR/<name> (default $TRANSFERBENCH_DATA)")
    return flags


def archive_flags() -> argparse.ArgumentParser:
    """The flags `data fetch` shares with `evaluate --download` and `check-data --verify`."""
    flags = common.parent()
    flags.add_argument("--archives", type=Path, default=None, metavar="DIR",
                       help="where archives are looked for and downloaded to (default DATA_ROOT/_archives)")
    flags.add_argument("--mirror", default="", metavar="BASE",
                       help="fetch each archive as BASE/<official file name> (a URL or a folder), still verified "
                            "against the official checksum")
    return flags


def fetch_options(args: argparse.Namespace):
    from benchmark.data.fetch import FetchOptions, data_root_of

    return FetchOptions(data_root=data_root_of(args.data_root), archives=args.archives,
                        mirror=getattr(args, "mirror", ""))


def run(args: argparse.Namespace) -> int:
    from benchmark.config import load_suite
    from benchmark.data.fetch import Outcome, dry_run, fetch_suite

    suite, options = load_suite(args.suite), fetch_options(args)
    if args.dry_run:
        print("\n".join(dry_run(suite.datasets, options, args.only)))
        return 0
    results = fetch_suite(suite.datasets, options, args.only)
    waiting = [r.dataset for r in results if r.outcome in (Outcome.MANUAL, Outcome.FAILED, Outcome.NO_RECIPE)]
    print(f"\n{len(results) - len(waiting)} of {len(results)} datasets in place under {options.data_root}"
          + (f"; still to do: {', '.join(waiting)} (see above)" if waiting else ""))
    return 1 if waiting else 0
