"""`stability: N` on any protocol entry: the cell's learned part rerun N times under rounding-level
perturbations, and the spread of its value kept in the row.

Another CPU, BLAS or thread count rounds floating point differently, and a cell whose result hangs on
rounding (a capped solver at large C, a few fine-tuning steps) prints another number there. No
bootstrap over test examples sees that. Each rerun changes what another machine would change:
- every non-zero feature (train, val and test) moved by up to 32 float32 units in the last place, up or
  down (seeded per rerun), about what another CPU's kernels change (`NUDGE_ULPS`);
- the train rows in another order (features and labels together; for a fine-tuning cell, the order of
  its train images);
- every second rerun (the 2nd, 4th, ...) of a feature task on one thread instead of the run's thread
  count. A fine-tuning rerun keeps the thread count: its reordered batches already change every step,
  and one thread would double its time.
The row keeps `details.stability = {"runs", "values", "spread"}` (spread over the stored value and the
reruns). Tables show such a cell as the mean over its run and its reruns, marked where they print
differently at the printed precision with how far another CPU's mean may lie (`83.5 ± 1.6 ≈0.4`,
`benchmark.results.report.rerun_mark`).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from benchmark.identity import Component
from benchmark.protocols.base import Features, FeatureTask, Protocol, SharedWork, TaskInputs

STABILITY_SEED = 20_211  # the perturbations' own seed stream, apart from every run seed
RERUNS = Component("stability_reruns", "2")  # 2: up to 32 ulps, even reruns on one thread, a model task's never
# Measured: EfficientNet-Lite2's MNIST-5k features under AVX2 kernels and under SSE ones (this repository's
# perf/machines.py paths, AMD EPYC) differ by 1.8e-6 of their value at the median (p90 1.4e-5), 15-30 float32
# units, and agree on every zero. A one-unit nudge (version 1) was 20x too small to stand in for another CPU.
NUDGE_ULPS = 32


def nudged(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x in float32 with each normal entry moved by a whole number of float32 units in the last place, drawn
    from -NUDGE_ULPS..NUDGE_ULPS; exact zeros (a ReLU's, which every CPU computes exactly) and subnormals stay."""
    x = np.asarray(x, dtype=np.float32)
    steps = rng.integers(-NUDGE_ULPS, NUDGE_ULPS + 1, size=x.shape).astype(np.int32)
    moved = (x.view(np.int32) + np.where(x < 0, -steps, steps)).view(np.float32)
    return np.where(np.abs(x) >= np.finfo(np.float32).tiny, moved, x)


def perturbed(data: TaskInputs, run: int) -> TaskInputs:
    """The inputs of rerun `run`: features nudged (feature tasks) and the train rows reordered."""
    rng = np.random.default_rng([STABILITY_SEED, run])
    order = rng.permutation(len(data.train))
    if not isinstance(data, FeatureTask):  # a model task's `x` are image indices: reorder only
        return dataclasses.replace(data, train=Features(data.train.x[order], data.train.y[order]))
    train = Features(nudged(data.train.x, rng)[order], np.asarray(data.train.y)[order])
    return dataclasses.replace(data, train=train, val=Features(nudged(data.val.x, rng), data.val.y),
                               test=Features(nudged(data.test.x, rng), data.test.y), shared=SharedWork())


@contextmanager
def threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def rerun_threads(data: TaskInputs, run: int) -> int:
    """One thread for the even reruns of a feature task; the run's own thread count otherwise."""
    return 1 if isinstance(data, FeatureTask) and run % 2 == 0 else torch.get_num_threads()


def rerun_values(protocol: Protocol, data: TaskInputs, runs: int) -> list[float]:
    """The cell's value under each of `runs` perturbed reruns."""
    values = []
    for run in range(1, runs + 1):
        with threads(rerun_threads(data, run)):
            values.append(float(protocol.evaluate(perturbed(data, run)).value))
    return values


def stability_details(value: float, reruns: list[float]) -> dict[str, Any]:
    values = [value, *reruns]
    return {"stability": {"runs": len(reruns), "values": reruns, "spread": max(values) - min(values)}}

