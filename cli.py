"""transferbench command line: a thin layer over the library (`benchmark.pipeline.runner.evaluate` & co).

Each subcommand is one module of `benchmark.commands`. Precedence: command-line options > suite YAML >
built-in defaults.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys

from benchmark.errors import UserError


RESUMES = ("every finished cell is already in the results store and every finished extraction in the cache; run the "
           "same command again to resume from there")


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
    except KeyboardInterrupt:
        print(f"interrupted: {getattr(args, 'interrupted', RESUMES)}", file=sys.stderr)
        return 130
    except OSError as err:  # the machine's: a read-only or full disk, a path that is a file, a permission
        print(f"error: {os_message(err)}", file=sys.stderr)
        return 2


def os_message(err: OSError) -> str:
    """One line for an operating-system error, naming the path and what to do."""
    where = f" {err.filename}" if err.filename else ""
    fixes = {errno.EROFS: "write somewhere writable", errno.ENOSPC: "free space or choose another disk",
             errno.EACCES: "check its permissions", errno.ENOTDIR: "a part of that path is a file, not a directory",
             errno.EEXIST: "it exists already"}
    return f"{err.strerror or err}:{where} ({fixes.get(err.errno, 'check the path')})"


def load_plugins(modules: list[str]) -> None:
    from benchmark.registry import load_plugin

    for module in modules:
        load_plugin(module)


if __name__ == "__main__":
    sys.exit(main())
