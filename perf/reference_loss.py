"""What scikit-learn 1.3.2's exact rounding costs the reference solver: one loss-and-gradient evaluation
with C's exp and log (`libm_exp`, bit for bit scikit-learn's) against numpy's vectorised exp and log, side
by side on the same parameters. An L-BFGS-B fit calls it about once per iteration.

    python perf/reference_loss.py [--sizes 3200x1280x10 20000x2048x100]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmark.protocols._logreg import libm_exp, libm_log, multinomial_loss_gradient  # noqa: E402
from perf._features import synthetic_features  # noqa: E402
from perf._machine import describe  # noqa: E402
from perf._timing import best_of  # noqa: E402


def compare(n: int, d: int, classes: int) -> dict:
    x, y = synthetic_features(n, d, classes)
    x = np.ascontiguousarray(x, dtype=np.float64)
    flat = np.random.default_rng(0).normal(size=classes * (d + 1)) * 0.01
    numpy_s, _ = best_of(3, lambda: multinomial_loss_gradient(flat, x, y, classes, 1e-2))
    libm_s, _ = best_of(3, lambda: multinomial_loss_gradient(flat, x, y, classes, 1e-2, libm_exp, libm_log))
    return {"size": f"{n}x{d}x{classes}", "numpy_ms": 1e3 * numpy_s, "libm_ms": 1e3 * libm_s, "ratio": libm_s / numpy_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["3200x1280x10", "20000x2048x100"])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 500x64x10")
    args = parser.parse_args()
    if args.quick:
        args.sizes = ["500x64x10"]
    print(describe())
    for size in args.sizes:
        r = compare(*(int(v) for v in size.split("x")))
        print(f"{r['size']} (rows x features x classes): numpy exp {r['numpy_ms']:.1f} ms, C's exp "
              f"{r['libm_ms']:.1f} ms per evaluation, {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
