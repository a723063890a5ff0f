"""Cold vs cached `evaluate` of a suite, measured side by side in one process.

    python perf/cache_speedup.py [--suite offline] [--model SPEC ...]

Run 1 extracts every feature (empty cache, empty store). Run 2 (`recompute`) reads every feature from
the cache but reruns every protocol. Run 3 is a plain re-run: every result is already stored, so it
neither extracts nor recomputes. Prints each time and the ratios to run 1, and checks that the three
runs report identical numbers.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.config import load_suite  # noqa: E402
from benchmark.pipeline.runner import RunOptions, evaluate  # noqa: E402
from perf._machine import describe  # noqa: E402

DEFAULT_MODELS = ["bundled:efficientnet_lite0", "timm:tf_efficientnet_lite0", "pixels:32"]


def timed_run(models: list[str], suite_name: str, work: Path, recompute: bool):
    options = RunOptions(cache_dir=work / "cache", results_path=work / "runs.sqlite", recompute=recompute)
    start = time.perf_counter()
    report = evaluate(models, load_suite(suite_name), options, echo=lambda line: None)
    return time.perf_counter() - start, report


def quick_suite() -> str:
    """A two-dataset, two-protocol suite file for the smoke run."""
    path = Path(tempfile.mkdtemp()) / "quick.yaml"
    path.write_text("name: quick\npreprocessing: {input_size: 16}\nprotocols: {knn: {}, linear: {solver: fast}}\n"
                    "datasets: {digits: {}, textures: {}}\n")
    return str(path)


def main() -> None:
    print(describe())
    parser = argparse.ArgumentParser()
    parser.add_argument("--suite", default="offline")
    parser.add_argument("--model", action="append", default=None)
    parser.add_argument("--quick", action="store_true", help="a smoke run: pixels:8 on a two-dataset suite")
    args = parser.parse_args()
    if args.quick:
        args.suite, args.model = quick_suite(), ["pixels:8"]
    models = args.model or DEFAULT_MODELS
    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: timed_run(models, args.suite, Path(tmp), recompute)
                for name, recompute in (("cold", False), ("features cached", True), ("results stored", False))}
    cold = runs["cold"][0]
    print(f"suite {args.suite}, models {models}")
    print(f"{'run':18s} {'seconds':>8s} {'speedup':>8s} {'extracted':>9s} {'reused':>6s}")
    for name, (seconds, report) in runs.items():
        print(f"{name:18s} {seconds:8.1f} {cold / seconds:7.1f}x {report.cache_misses:9d} {report.reused:6d}")
    values = [[round(row.value, 6) for row in report.rows] for _, report in runs.values()]
    print("identical results in all runs:", values[0] == values[1] == values[2])


if __name__ == "__main__":
    main()
