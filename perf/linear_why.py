"""Why the linear speed-up is what it is on this machine: the sweep's time split into its L-BFGS
iterations and each iteration's cost, for sklearn and for our torch solver, on the same features.

    python perf/linear_why.py [--sizes 10000x512 50000x2048]

speed-up = (sklearn iterations / torch iterations) x (sklearn time per iteration / torch time per
iteration). Each iteration is about two passes over the train features (the logits GEMM and the
gradient GEMM), so the per-iteration ratio is bounded by the two BLAS libraries' GEMM speeds on these
shapes, which the script also measures: numpy's BLAS (what sklearn calls) and torch's.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.protocols._linear_sweep import c_grid  # noqa: E402
from benchmark.protocols._logreg import TorchLogReg  # noqa: E402
from perf._features import synthetic_task  # noqa: E402
from perf._machine import describe  # noqa: E402
from perf._timing import best_of  # noqa: E402
from perf.linear_probe import real_task  # noqa: E402


def sklearn_sweep(x: np.ndarray, y: np.ndarray, grid: np.ndarray) -> tuple[float, int]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    clf, iterations = LogisticRegression(solver="lbfgs", warm_start=True), 0
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for C in grid:
            iterations += int(clf.set_params(C=C).fit(x, y).n_iter_.max())
    return time.perf_counter() - start, iterations


def torch_sweep(x: np.ndarray, y: np.ndarray, grid: np.ndarray, classes: int) -> tuple[float, int]:
    solver, iterations = TorchLogReg("multiclass", classes), 0
    start = time.perf_counter()
    for C in grid:
        iterations += solver.fit(x, y, C).iterations
    return time.perf_counter() - start, iterations


def gemm_pass(x, classes: int) -> float:
    """Seconds of one logits GEMM plus one gradient GEMM over `x` (numpy or torch, its own dtype)."""
    if isinstance(x, np.ndarray):
        w = np.zeros((classes, x.shape[1]), dtype=x.dtype)
        return best_of(5, lambda: (x @ w.T).T @ x)[0]
    w = torch.zeros(classes, x.shape[1], dtype=x.dtype)
    return best_of(5, lambda: (x @ w.T).T @ x)[0]


def explain(data, name: str) -> None:
    x, y, classes, grid = data.train.x, data.train.y, data.num_classes, c_grid(-6, 5, 45)
    n, d = x.shape
    sk_s, sk_iters = sklearn_sweep(x, y, grid)
    th_s, th_iters = torch_sweep(x, y, grid, classes)
    sk_pass64, sk_pass32 = gemm_pass(x.astype(np.float64), classes), gemm_pass(x, classes)
    th_pass = gemm_pass(torch.from_numpy(x), classes)
    per_sk, per_th = sk_s / sk_iters, th_s / th_iters
    print(f"{name} {n}x{d}: sklearn {sk_s:.1f}s / {sk_iters} iterations = {1e3 * per_sk:.1f} ms each; torch {th_s:.2f}s / "
          f"{th_iters} iterations = {1e3 * per_th:.1f} ms each; speed-up {sk_s / th_s:.1f}x = iterations "
          f"{sk_iters / th_iters:.1f}x * per-iteration {per_sk / per_th:.1f}x")
    print(f"  two GEMM passes over the features: numpy float64 {1e3 * sk_pass64:.1f} ms, numpy float32 "
          f"{1e3 * sk_pass32:.1f} ms, torch float32 {1e3 * th_pass:.1f} ms; sklearn's iteration is "
          f"{per_sk / sk_pass64:.1f} passes of float64, ours {per_th / th_pass:.1f} passes of float32")


def main() -> None:
    print(describe())
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="*", default=["10000x512", "50000x2048"])
    parser.add_argument("--real", nargs="*", default=[], metavar="DATASET",
                        help="offline-suite datasets' EfficientNet-Lite0 features, e.g. fashion_mnist")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2000x64 and digits")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.real = ["2000x64"], ["digits"]
    for size in args.sizes:
        n, d = (int(v) for v in size.split("x"))
        explain(synthetic_task(n, n // 4, d), "synthetic")
    for dataset in args.real:
        explain(real_task("bundled:efficientnet_lite0", dataset, "offline", args.cache_dir), dataset)


if __name__ == "__main__":
    main()
