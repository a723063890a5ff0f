"""`ls`: what is registered (encoder sources, datasets, suites, protocols, methods)."""

from __future__ import annotations

import argparse

from benchmark.commands import common

KINDS = ("encoders", "datasets", "suites", "protocols", "methods")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ls", parents=[common.plugins()], help="list registered encoder sources, datasets, "
                                                                   "suites, protocols or methods")
    parser.add_argument("kind", choices=KINDS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
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
