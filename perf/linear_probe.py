"""Linear probe: the torch L-BFGS sweep vs sklearn's LogisticRegression(lbfgs) over the same C grid,
on the same features, side by side in one process; and the converged solver vs scikit-learn's own lbfgs
run to convergence (tol 1e-10, warm starts, as issue 33 measures the anchor).

    python perf/linear_probe.py [--sizes 10000x512 50000x2048] [--num-wd 45] [--real fashion_mnist ...]
                                [--converged-sizes 4000x512] [--converged-num-wd 12] [--sklearn-limit SECONDS]

Prints each path's time, the ratio, the chosen C of each, and their test accuracies (targets: the
torch path at least 10x faster than the capped reference, the converged solver at least 20x faster than
scikit-learn's converged fit; test accuracy within 0.5 points).
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf._machine import describe  # noqa: E402
from benchmark.protocols import make_protocol  # noqa: E402
from perf._features import synthetic_task  # noqa: E402


def timed(protocol, data):
    start = time.perf_counter()
    result = protocol.evaluate(data)
    return time.perf_counter() - start, result


def warm_up() -> None:
    """Initialise torch's and sklearn's solvers and thread pools outside the timing."""
    small = synthetic_task(400, 100, 16, seed=1)
    for mode in ("reference", "fast"):
        make_protocol("linear", {"solver": mode, "num_wd": 3}).evaluate(small)


def compare(n: int, d: int, num_wd: int) -> dict:
    return compare_on(synthetic_task(n, n // 4, d), f"{n}x{d}", num_wd)


def compare_on(data, size: str, num_wd: int) -> dict:
    warm_up()
    slow_s, slow = timed(make_protocol("linear", {"solver": "reference", "num_wd": num_wd}), data)
    fast_s, fast = timed(make_protocol("linear", {"solver": "fast", "num_wd": num_wd}), data)
    return {"size": size, "sklearn_s": slow_s, "torch_s": fast_s, "ratio": slow_s / fast_s,
            "C_sklearn": slow.chosen["C"], "C_torch": fast.chosen["C"], "test_sklearn": slow.value,
            "test_torch": fast.value, "agree": abs(slow.value - fast.value) <= 0.5}


class OutOfTime(Exception):
    """scikit-learn's run passed the comparison's time limit."""


@contextmanager
def time_limit(seconds: float | None):
    """Raise OutOfTime in this thread after `seconds` (scipy's L-BFGS calls back into Python every
    iteration, so the signal lands within one iteration)."""
    if seconds is None:
        yield
        return

    def stop(signum, frame):
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def sklearn_converged(data, num_wd: int, fitted: list[float] | None = None) -> tuple[float, float]:
    """scikit-learn's installed LogisticRegression(lbfgs) run to tol 1e-10 along the same C grid with warm
    starts, the first strictly best C on val refit on train+val: (chosen C, test accuracy). Each C whose
    fit finished is appended to `fitted` (what a time limit leaves)."""
    import warnings

    from sklearn.linear_model import LogisticRegression

    from benchmark.protocols._linear_sweep import c_grid, first_strict_best

    grid, scores, fitted = c_grid(-6.0, 5.0, num_wd), [], [] if fitted is None else fitted
    model = LogisticRegression(solver="lbfgs", tol=1e-10, max_iter=100_000, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its float64 line search reports a stalled step at large C
        for C in grid:
            scores.append(100 * model.set_params(C=C).fit(data.train.x, data.train.y).score(data.val.x, data.val.y))
            fitted.append(float(C))
        C = float(grid[first_strict_best(scores)])
        final = LogisticRegression(solver="lbfgs", tol=1e-10, max_iter=100_000, C=C)
        final.fit(data.trainval.x, data.trainval.y)
    return C, 100 * final.score(data.test.x, data.test.y)


def compare_converged(data, size: str, num_wd: int, sklearn_limit: float | None = None) -> dict:
    """Ours, then scikit-learn's converged fit on the same grid. Past `sklearn_limit` seconds scikit-learn
    is stopped: its C and test are None, and the ratio is a lower bound (`finished` False)."""
    make_protocol("linear", {"solver": "converged", "num_wd": 3}).evaluate(synthetic_task(400, 100, 16, seed=1))
    ours_s, ours = timed(make_protocol("linear", {"solver": "converged", "num_wd": num_wd}), data)
    start, fitted, (C, test) = time.perf_counter(), [], (None, None)
    try:
        with time_limit(sklearn_limit):
            C, test = sklearn_converged(data, num_wd, fitted)
    except OutOfTime:
        pass
    sklearn_s = time.perf_counter() - start
    return {"size": size, "num_wd": num_wd, "sklearn_s": sklearn_s, "ours_s": ours_s, "ratio": sklearn_s / ours_s,
            "C_sklearn": C, "C_ours": ours.chosen["C"], "test_sklearn": test, "test_ours": ours.value,
            "finished": C is not None, "sklearn_fitted": len(fitted)}


def converged_line(row: dict) -> str:
    """One printed line of a `compare_converged` row; a stopped scikit-learn run reads as a lower bound."""
    ours = f"ours {row['ours_s']:.1f}s"
    if not row["finished"]:
        return (f"linear converged {row['size']}, {row['num_wd']} C: sklearn lbfgs tol 1e-10 stopped after "
                f"{row['sklearn_s']:.0f}s with {row['sklearn_fitted']} of {row['num_wd']} C fitted, {ours}, "
                f">= {row['ratio']:.1f}x; ours chose C {row['C_ours']:.3g}, test {row['test_ours']:.2f}")
    return (f"linear converged {row['size']}, {row['num_wd']} C: sklearn lbfgs tol 1e-10 {row['sklearn_s']:.1f}s, "
            f"{ours}, {row['ratio']:.1f}x; C {row['C_sklearn']:.3g} vs {row['C_ours']:.3g}; "
            f"test {row['test_sklearn']:.2f} vs {row['test_ours']:.2f}")


def real_task(model: str, dataset: str, suite_name: str, cache_dir: Path):
    """Real features of one suite dataset (extracted into `cache_dir`, or read from it), with the
    protocol's own train/val/test split."""
    from benchmark.config import load_suite
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.inputs import feature_task, pair
    from benchmark.pipeline.runner import Evaluator, RunOptions

    suite = load_suite(suite_name)
    evaluator = Evaluator(suite, RunOptions(cache_dir=cache_dir, results_path=cache_dir / "runs.sqlite"),
                          echo=lambda _: None)
    pairing = pair(load_encoder(model), model, suite, dataset, None)
    return feature_task(evaluator.features(pairing)[0], pairing)[0]


def compare_real(model: str, dataset: str, suite_name: str, cache_dir: Path, num_wd: int) -> dict:
    data = real_task(model, dataset, suite_name, cache_dir)
    return compare_on(data, f"{dataset} {len(data.train)}x{data.train.x.shape[1]} ({model})", num_wd)


def main() -> None:
    print(describe())
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["10000x512", "50000x2048"])
    parser.add_argument("--num-wd", type=int, default=45)
    parser.add_argument("--real", nargs="*", default=[], metavar="DATASET",
                        help="also offline-suite datasets' EfficientNet-Lite0 features, e.g. fashion_mnist")
    parser.add_argument("--cache-dir", type=Path, default=Path("cache"))
    parser.add_argument("--converged-sizes", nargs="*", default=["4000x512", "10000x512"])
    parser.add_argument("--converged-num-wd", type=int, default=12)
    parser.add_argument("--converged-real", nargs="*", default=[], metavar="DATASET",
                        help="the converged comparison on offline-suite datasets' EfficientNet-Lite0 features")
    parser.add_argument("--sklearn-limit", type=float, default=None, metavar="SECONDS",
                        help="stop scikit-learn's converged fit after this long (the ratio is then a lower bound)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2000x64, 6 C values, digits (fast solver)")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.num_wd, args.real = ["2000x64"], 6, ["digits"]
        args.converged_sizes, args.converged_num_wd = ["1000x32"], 4  # (run_all --quick runs the real-feature one)
    tasks = [(synthetic_task(int(n), int(n) // 4, int(d)), size) for size in args.converged_sizes
             for n, d in [size.split("x")]]
    for name in args.converged_real:
        data = real_task("bundled:efficientnet_lite0", name, "offline", args.cache_dir)
        tasks.append((data, f"{name} {len(data.train)}x{data.train.x.shape[1]} (bundled:efficientnet_lite0)"))
    for data, size in tasks:
        print(converged_line(compare_converged(data, size, args.converged_num_wd, args.sklearn_limit)), flush=True)
    if args.quick:  # and a run stopped by the limit, so that path stays exercised
        print(converged_line(compare_converged(tasks[0][0], tasks[0][1], args.converged_num_wd, 1e-3)), flush=True)
    rows = [compare(*(int(v) for v in size.split("x")), args.num_wd) for size in args.sizes]
    rows += [compare_real("bundled:efficientnet_lite0", name, "offline", args.cache_dir, args.num_wd)
             for name in args.real]
    for row in rows:
        print(f"linear {row['size']}: sklearn {row['sklearn_s']:.1f}s, torch {row['torch_s']:.1f}s, "
              f"{row['ratio']:.1f}x; C {row['C_sklearn']:.3g} vs {row['C_torch']:.3g}; test "
              f"{row['test_sklearn']:.2f} vs {row['test_torch']:.2f} (within 0.5: {row['agree']})", flush=True)


if __name__ == "__main__":
    main()
