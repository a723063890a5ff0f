"""`extract`: the (cached) features of one split, optionally written to an .npz."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchmark.commands import common
from benchmark.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("extract", parents=[common.plugins(), common.suite(default=None), common.run()],
                            help="extract (cached) features of one split; optionally save an npz")
    parser.add_argument("--model", required=True, help="SOURCE:NAME[@WEIGHTS_FILE]")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--out", type=Path, default=None, help="write features and labels to this .npz")
    parser.set_defaults(run=run)


def npz_path(out: Path) -> Path:
    """Where the features go: a path ending in .npz (numpy would add the suffix silently), not a directory."""
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; name a file, e.g. {out / 'features.npz'}")
    if out.suffix != ".npz":
        raise UserError(f"--out {out} must end in .npz (numpy writes {out}.npz otherwise); e.g. {out.with_suffix('.npz')}")
    try:  # a folder that cannot take the file fails now, not after the extraction
        with tempfile.NamedTemporaryFile(dir=out.parent or "."):
            pass
    except OSError as err:
        raise UserError(f"--out {out}: cannot write in {out.parent} ({err.strerror}); choose a writable folder") from None
    return out


def run(args: argparse.Namespace) -> int:
    from benchmark import distributed
    from benchmark.cache import FeatureCache
    from benchmark.config import Suite, load_suite
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.inputs import cached_features, pair

    out = npz_path(args.out) if args.out else None  # checked before any work
    suite = load_suite(args.suite) if args.suite else Suite(name="extract")
    if args.dataset not in suite.datasets:  # a dataset outside the suite: its defaults
        suite = Suite(name=suite.name, preprocessing=suite.preprocessing, datasets={args.dataset: {}})
    main_rank = distributed.init_from_env(args.device).is_main  # under torchrun each rank extracts a shard
    say = print if main_rank else (lambda *_: None)
    pairing = pair(load_encoder(args.model), args.model, suite, args.dataset, args.data_root,
                   common.run_options(args).precision)
    pairing.dataset.spec.check_split(args.split)
    splits, keys, hits = cached_features(FeatureCache(args.cache_dir), pairing, common.run_options(args).extraction,
                                         only=(args.split,))
    features = splits[args.split]
    say(f"{args.dataset}/{args.split}: features {features.x.shape} {'from the cache' if hits else 'extracted'}, "
        f"cache key {keys[args.split]}")
    if out and main_rank:
        np.savez(out, features=np.asarray(features.x), labels=np.asarray(features.y))
        say(f"wrote {out}")
    return 0
