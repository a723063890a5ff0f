"""`stability: N` on any protocol entry: the cell's learned part rerun N times under rounding-level
perturbations, and the spread of its value kept in the row.

Another CPU, BLAS or thread count rounds floating point differently, and a cell whose result hangs on
rounding (a capped solver at large C, a few fine-tuning steps) prints another number there. No
bootstrap over test examples sees that. Each rerun changes what another machine would change:
- every non-zero feature (train, val and test) moved by at most one float32 unit in the last place,
  each entry up, down or not at all (seeded per rerun);
- the train rows in another order (features and labels together; for a fine-tuning cell, the order of
  its train images);
- every second rerun on one thread instead of the run's thread count.
The row keeps `details.stability = {"runs", "values", "spread"}` (spread over the stored value and the
reruns). Tables mark a value that a rerun prints differently at the printed precision (`83.5≈`,
`benchmark.results.report`).
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from benchmark.protocols.base import Features, FeatureTask, Protocol, SharedWork, TaskInputs

STABILITY_SEED = 20_211  # the perturbations' own seed stream, apart from every run seed


def nudged(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """x in float32 with each entry moved to its next float32 up, its next down, or left as it is; exact
    zeros (a ReLU's, which every CPU computes exactly) stay zero."""
    x = np.asarray(x, dtype=np.float32)
    steps = rng.integers(-1, 2, size=x.shape)
    return np.where((steps == 0) | (x == 0), x, np.nextafter(x, np.where(steps > 0, np.inf, -np.inf).astype(np.float32)))


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


def rerun_values(protocol: Protocol, data: TaskInputs, runs: int) -> list[float]:
    """The cell's value under each of `runs` perturbed reruns."""
    values = []
    for run in range(1, runs + 1):
        with threads(1 if run % 2 else torch.get_num_threads()):
            values.append(float(protocol.evaluate(perturbed(data, run)).value))
    return values


def stability_details(value: float, reruns: list[float]) -> dict[str, Any]:
    values = [value, *reruns]
    return {"stability": {"runs": len(reruns), "values": reruns, "spread": max(values) - min(values)}}

