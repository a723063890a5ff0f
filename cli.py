"""transferbench command line: a thin layer over the library (`benchmark.pipeline.runner.evaluate` & co).

Each subcommand is one module of `benchmark.commands`. Precedence: command-line options > suite YAML >
built-in defaults.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from benchmark.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from benchmark.commands import SUBCOMMANDS

    parser = argparse.ArgumentParser(prog="transferbench", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in SUBCOMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=os.environ.get("TRANSFERBENCH_LOG", "WARNING"), format="%(message)s")
    try:
        load_plugins(args.plugin)
        return args.run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def load_plugins(modules: list[str]) -> None:
    from benchmark.registry import load_plugin

    for module in modules:
        load_plugin(module)


if __name__ == "__main__":
    sys.exit(main())
