"""Is linear_sgd a good linear probe at ImageNet's width and class count? Its chosen head's test accuracy
beside the converged full-batch solver's, on the same synthetic class-structured features (perf/scale.py's),
memory-mapped as the feature cache stores them, both timed in this one process.

    python perf/linear_sgd_check.py --rows 100000 --dim 2048 --classes 1000 [--epochs 10] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perf._machine import describe  # noqa: E402
from perf.scale import write_features  # noqa: E402


def timed(protocol: str, params: dict, task) -> tuple[float, float, dict]:
    from benchmark.protocols import make_protocol

    start = time.perf_counter()
    result = make_protocol(protocol, params).evaluate(task)
    return result.value, time.perf_counter() - start, result.chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--num-wd", type=int, default=5, help="C values of the converged solver's sweep")
    parser.add_argument("--quick", action="store_true", help="5,000 x 64 x 10: a smoke run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.dim, args.classes, args.epochs = 5000, 64, 10, 3
    from benchmark.protocols import Features, FeatureTask

    print(describe())
    with tempfile.TemporaryDirectory(prefix="sgd-check-") as folder:
        write_features(Path(folder), args.rows, args.dim, args.classes)
        split = {s: Features(np.load(Path(folder) / f"{s}_x.npy", mmap_mode="r"), np.load(Path(folder) / f"{s}_y.npy"))
                 for s in ("train", "val", "test")}
        task = FeatureTask(split["train"], split["val"], split["test"], args.classes, "top1")
        print(f"{args.rows:,} x {args.dim} train rows, {args.classes} classes; val and test {len(split['val']):,} each",
              flush=True)
        sgd = timed("linear_sgd", {"epochs": args.epochs, "lrs": [0.03, 0.1, 0.3]}, task)
        print(f"linear_sgd ({args.epochs} epochs, lrs 0.03 / 0.1 / 0.3): test {sgd[0]:.2f} in {sgd[1]:.0f} s, "
              f"chosen {sgd[2]}", flush=True)
        full = timed("linear", {"solver": "converged", "num_wd": args.num_wd}, task)
        print(f"linear, converged solver ({args.num_wd} C values): test {full[0]:.2f} in {full[1]:.0f} s, "
              f"chosen {full[2]}", flush=True)
        print(f"difference (linear_sgd - converged): {sgd[0] - full[0]:+.2f} points")


if __name__ == "__main__":
    main()
