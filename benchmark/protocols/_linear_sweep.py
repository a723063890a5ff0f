"""The linear probe's C sweep, shared by the linear and calibration protocols (a neutral module: the
registry does not import names starting with "_", and neither protocol imports the other).

The sweep and the train+val refit are memoised on `FeatureTask.shared`, so when both protocols probe
the same features with the same sweep parameters, the sweep runs once.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np

from benchmark.devices import fits
from benchmark.metrics import score
from benchmark.params import CheckedParams, Constraints, Interval, Options
from benchmark.protocols._logreg import SklearnLogReg, TorchLogReg
from benchmark.protocols.base import FeatureTask, check_finite

log = logging.getLogger(__name__)


class Solver(StrEnum):
    SKLEARN = "sklearn"  # the reference path
    TORCH = "torch"  # the fast one (same objective and stopping rule)


SOLVERS = {Solver.SKLEARN: SklearnLogReg, Solver.TORCH: TorchLogReg}


@dataclass(frozen=True)
class SweepParams(CheckedParams):
    """The C sweep shared by linear and calibration."""

    solver: Solver = Solver.SKLEARN
    wd_start: float = -6.0
    wd_stop: float = 5.0
    num_wd: int = 45
    max_iter: int = 100
    tol: float = 1e-4
    constraints: ClassVar[Constraints] = {
        "solver": Options(*Solver), "wd_start": Interval(float, -12, 12), "wd_stop": Interval(float, -12, 12),
        "num_wd": Interval(int, 1, 1000), "max_iter": Interval(int, 1), "tol": Interval(float, 0, open_low=True)}

    def sweep_key(self) -> tuple:
        return ("linear_sweep", *(getattr(self, f.name) for f in dataclasses.fields(SweepParams)))


@dataclass(frozen=True)
class Sweep:
    """The sweep's outcome: the solver after the last fit, the grid, validation scores, best index."""

    model: SklearnLogReg | TorchLogReg
    grid: np.ndarray
    val_scores: list[float]
    best: int
    iterations: int | None = None  # L-BFGS iterations over the whole sweep (torch solver)

    @property
    def best_C(self) -> np.float64:
        """Kept as the grid's np.float64, as the reference passes it: sklearn's lbfgs refit on the same
        features differs when C is a Python float (measured on digits: 95.82 with np.float64 vs 96.38
        with float), most likely through NumPy 2's promotion rules, where a Python float is "weak"."""
        return self.grid[self.best]


def c_grid(wd_start: float, wd_stop: float, num: int) -> np.ndarray:
    """C = 1 / wd for wd = logspace(start, stop, num), in sweep order (largest C first), computed in
    float32 like the reference's torch.logspace."""
    weight_decays = np.logspace(wd_start, wd_stop, num).astype(np.float32)
    return 1.0 / weight_decays.astype(np.float64)


def make_solver(data: FeatureTask, p: SweepParams) -> SklearnLogReg | TorchLogReg:
    """The chosen solver. The torch one keeps train, val and test features resident on the run's device
    across the sweep; when they would not fit in the device's free memory, it runs on the CPU instead."""
    if p.solver == Solver.SKLEARN:
        return SklearnLogReg(data.task, data.num_classes, p.max_iter, p.tol)
    resident = 4 * sum(split.x.size for split in (data.train, data.val, data.test, data.trainval))
    device = data.device if fits(resident, data.device) else "cpu"
    if device != data.device:
        log.warning("linear: %.1f GB of features do not fit on %s; the sweep runs on the CPU", resident / 1e9,
                    data.device)
    return TorchLogReg(data.task, data.num_classes, p.max_iter, p.tol, device=device)


def run_sweep(data: FeatureTask, p: SweepParams) -> Sweep:
    """The warm-started sweep over the C grid on train, scored on val (first strictly best C wins)."""
    check_finite(data)
    model = make_solver(data, p)
    grid = c_grid(p.wd_start, p.wd_stop, p.num_wd)
    val_scores, iterations = [], 0
    for C in grid:
        val_scores.append(score(data.metric, data.val.y, model.fit(data.train.x, data.train.y, C).decision_function(
            data.val.x)))
        iterations += getattr(model, "iterations", 0)
    best = int(np.argmax(val_scores))  # argmax: the first of equal maxima
    return Sweep(model, grid, val_scores, best, iterations if p.solver == Solver.TORCH else None)


def linear_sweep(data: FeatureTask, p: SweepParams) -> Sweep:
    """The sweep, computed once per inputs and sweep parameters."""
    return data.shared.get_or_compute(p.sweep_key(), lambda: run_sweep(data, p))


def refit_model(data: FeatureTask, p: SweepParams, on: str) -> SklearnLogReg | TorchLogReg:
    """The probe refit on `on` ("trainval" or "train") at the chosen C, warm-started from the sweep's
    last fit (on a copy, so the shared sweep stays as it was); fitted once per inputs."""
    def compute() -> SklearnLogReg | TorchLogReg:
        sweep = linear_sweep(data, p)
        fit_on = data.trainval if on == "trainval" else data.train
        return sweep.model.warm_copy().fit(fit_on.x, fit_on.y, sweep.best_C)

    return data.shared.get_or_compute((*p.sweep_key(), "refit", on), compute)


def refit_logits(data: FeatureTask, p: SweepParams, split: str, on: str) -> np.ndarray:
    """Decision values on `split` of the probe refit on `on` (see `refit_model`)."""
    return data.shared.get_or_compute((*p.sweep_key(), "refit", on, split),
                                      lambda: refit_model(data, p, on).decision_function(getattr(data, split).x))
