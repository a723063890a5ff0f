"""The command line, one module per subcommand. Each module has `register(subparsers)`, which adds its
parser (with the shared flags of `common` as argparse parents) and sets `run(args) -> exit code`.
`cli.py` at the top level is the entry point."""

from benchmark.commands import (check_data, compare, data, evaluate, extract, leaderboard, listing, plan, pretrain,
                                reproduce, suite_cmd, table)

SUBCOMMANDS = (listing, extract, evaluate, plan, pretrain, reproduce, table, leaderboard, compare, check_data, data,
               suite_cmd)

__all__ = ["SUBCOMMANDS"]
