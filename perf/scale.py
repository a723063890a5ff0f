"""Feature protocols at scale: time and peak anonymous memory of each, on a synthetic feature set stored
as memory-mapped .npy files (as the feature cache stores them), each protocol in its own process.

    python perf/scale.py --rows 100000 --dim 2048 --classes 1000 [--protocols knn linear_sgd ...] [--timeout 600]
                         [--device cuda]

Memory is RssAnon sampled every 20 ms (anonymous pages: the mapped features, which the kernel can drop,
are not counted), so it shows what a protocol allocates, not the cache it reads. A protocol still
running after --timeout seconds is stopped and reported as such; a full-batch solver that would not fit
refuses with its estimate (reported as its message). Val and test have rows / 25 each (ImageNet: 50,000).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from perf._machine import describe  # noqa: E402

SGD_SLICE = 100  # linear_sgd steps measured per training; a full epoch is projected from them
PROTOCOLS = {  # name -> (registered protocol, parameters): one short sweep each, not a full study's budget
    "linear_sgd": ("linear_sgd", {"epochs": 1, "epoch_length": SGD_SLICE}),
    "knn": ("knn", {}),
    "fewshot": ("fewshot", {}),
    "retrieval": ("retrieval", {}),
    "retrieval_train": ("retrieval", {"database": "train"}),  # test queries against the train+val gallery
    "quality": ("quality", {}),
    "linear_fast": ("linear", {"solver": "fast", "num_wd": 3}),
    "linear_reference": ("linear", {"solver": "reference", "num_wd": 3}),
    "linear_converged": ("linear", {"solver": "converged", "num_wd": 3}),
    "calibration": ("calibration", {"solver": "fast", "num_wd": 3}),
}
CHUNK_ROWS = 65536


def write_features(folder: Path, rows: int, dim: int, classes: int, seed: int = 0) -> None:
    """Class means plus noise, float32, written chunk by chunk into memory-mapped .npy files."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dim)).astype(np.float32) * 0.15
    for split, count in (("train", rows), ("val", max(rows // 25, classes)), ("test", max(rows // 25, classes))):
        x = np.lib.format.open_memmap(folder / f"{split}_x.npy", mode="w+", dtype=np.float32, shape=(count, dim))
        y = np.arange(count) % classes
        rng.shuffle(y)
        for start in range(0, count, CHUNK_ROWS):
            part = y[start:start + CHUNK_ROWS]
            x[start:start + len(part)] = means[part] + rng.standard_normal((len(part), dim), dtype=np.float32)
        x.flush()
        np.save(folder / f"{split}_y.npy", y)


def anonymous_gb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024 ** 2
    return float("nan")


def peak_anonymous_gb(stop: threading.Event, peak: list[float], before: float) -> None:
    """Sample RssAnon every 20 ms; every 5 s print the peak so far (a run stopped at --timeout still reports it)."""
    last = time.monotonic()
    while not stop.is_set():
        peak[0] = max(peak[0], anonymous_gb())
        if time.monotonic() - last > 5:
            print(json.dumps({"peak_anon_gb": peak[0], "before_gb": before}), flush=True)
            last = time.monotonic()
        time.sleep(0.02)


def worker(name: str, folder: Path, device: str) -> None:
    """Run one protocol on the mapped features; print one JSON line."""
    from benchmark.errors import UserError
    from benchmark.protocols import Features, FeatureTask, make_protocol

    split = {s: Features(np.load(folder / f"{s}_x.npy", mmap_mode="r"), np.load(folder / f"{s}_y.npy"))
             for s in ("train", "val", "test")}
    task = FeatureTask(split["train"], split["val"], split["test"], int(split["train"].y.max()) + 1, "top1",
                       device=device)
    stop, peak, before = threading.Event(), [0.0], anonymous_gb()
    threading.Thread(target=peak_anonymous_gb, args=(stop, peak, before), daemon=True).start()
    kind, params = PROTOCOLS[name]
    start = time.perf_counter()
    try:
        outcome = f"{make_protocol(kind, params).evaluate(task).value:.2f}"
    except UserError as err:
        outcome = f"refused: {err}"
    seconds = time.perf_counter() - start
    stop.set()
    print(json.dumps({"seconds": seconds, "peak_anon_gb": peak[0], "before_gb": before, "outcome": outcome}))


def measure(name: str, folder: Path, timeout: float, rows: int, device: str) -> str:
    command = [sys.executable, __file__, "--worker", name, "--dir", str(folder), "--device", device]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as stopped:
        lines = (stopped.stdout or b"").decode().strip().splitlines() if isinstance(stopped.stdout, bytes) else (
            (stopped.stdout or "").strip().splitlines())
        memory = memory_text(json.loads(lines[-1])) if lines else "no memory sample yet"
        return f"{name:18s} not finished in {timeout:.0f} s (stopped)  {memory} while running"
    if done.returncode:
        return f"{name:18s} exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return f"{name:18s} {row['seconds']:8.1f} s  {memory_text(row)}  {row['outcome']}{projection(name, row, rows)}"


def memory_text(row: dict) -> str:
    return (f"peak RssAnon {row['peak_anon_gb']:6.2f} GB (+{row['peak_anon_gb'] - row['before_gb']:.2f} over the "
            f"imports)")


def projection(name: str, row: dict, rows: int) -> str:
    """linear_sgd trained at most SGD_SLICE steps on train, then on train+val: one full epoch of each projected
    from them (its finite check, val and test predictions counted in the measured time, so an upper bound)."""
    if name != "linear_sgd" or row["outcome"].startswith("refused"):
        return ""
    full = math.ceil(rows / 256) + math.ceil((rows + max(rows // 25, 1)) / 256)
    measured = min(SGD_SLICE, math.ceil(rows / 256)) + min(SGD_SLICE, math.ceil((rows + max(rows // 25, 1)) / 256))
    return (f" (after {measured} steps; one epoch of train and of train+val, {full:,} steps, projected: "
            f"{row['seconds'] * full / measured:,.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--protocols", nargs="+", choices=list(PROTOCOLS), default=list(PROTOCOLS))
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--device", default="cpu", help="where the protocols compute (cuda: the GPU projection)")
    parser.add_argument("--quick", action="store_true", help="5,000 x 64 x 10: a smoke run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.dir, args.device)
    if args.quick:
        args.rows, args.dim, args.classes = 5000, 64, 10
    if args.classes < 2 or args.dim < 1 or args.rows < 25 * args.classes:
        parser.error("need --classes >= 2, --dim >= 1 and --rows >= 25 x classes (so val and test hold every class)")
    print(describe())
    with tempfile.TemporaryDirectory(prefix="scale-") as folder:
        start = time.perf_counter()
        write_features(Path(folder), args.rows, args.dim, args.classes)
        size = sum(f.stat().st_size for f in Path(folder).glob("*_x.npy")) / 1e9
        print(f"{args.rows:,} x {args.dim} train rows, {args.classes} classes: {size:.2f} GB of float32 features "
              f"(written in {time.perf_counter() - start:.0f} s)", flush=True)
        for name in args.protocols:
            print(measure(name, Path(folder), args.timeout, args.rows, args.device), flush=True)


if __name__ == "__main__":
    main()
