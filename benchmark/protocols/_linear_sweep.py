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

from benchmark.devices import fits, host_available_bytes
from benchmark.errors import UserError
from benchmark.identity import Component
from benchmark.metrics import SCORING, score
from benchmark.params import CheckedParams, Constraints, Interval, Options
from benchmark.protocols._logreg import SOLVERS, ConvergedLogReg, ReferenceLogReg, TorchLogReg, lockstep_bytes
from benchmark.protocols.base import Features, FeatureTask, check_finite
from benchmark.vocab import Metric

log = logging.getLogger(__name__)

LogReg = ReferenceLogReg | TorchLogReg
# the C grid, warm starts, selection rule and train+val refit (linear and calibration both declare it)
# 2: the converged solver's refit runs to REFIT_TOL
SWEEP = Component("linear_sweep", "2", uses=(SOLVERS, SCORING))


class Solver(StrEnum):
    """Which solver runs the sweep. All minimise the reference's objective, warm-started. The reference
    and fast solvers stop each fit after at most 100 L-BFGS iterations, so at large C they are not
    converged and their result depends on row order and rounding (see README); `converged` is not capped."""

    REFERENCE = "reference"  # the reference's rule: scipy's L-BFGS-B in float64 on the CPU, unscaled objective
    FAST = "fast"  # our torch L-BFGS on the run's device, stopped on the mean-scaled objective's gradient
    CONVERGED = "converged"  # Newton-CG on the CPU, until the mean loss's float64 gradient is tiny


# (max_iter, tol) of each mode: the reference's gtol on the unscaled objective's projected gradient; the
# same tol on the largest gradient entry of the mean-scaled objective (scikit-learn >= 1.4's rule); and
# for `converged` a bound on the norm of the mean-scaled gradient, with a cap no fit measured came near.
SOLVER_STOPPING = {Solver.REFERENCE: (100, 1e-4), Solver.FAST: (100, 1e-4), Solver.CONVERGED: (1000, 1e-6)}
CPU_SOLVERS = {Solver.REFERENCE: ReferenceLogReg, Solver.CONVERGED: ConvergedLogReg}  # float64 scipy, on the CPU
# The converged refit, whose test logits the tables print (accuracy; ECE, which bins confidences), runs on
# to a 1,000x smaller gradient. At 1e-6, Lite2's MNIST-5k ECE at C = 1e2 read 4.25 under one MKL kernel
# path and 4.36 under another: the test logits were fixed only to about 1e-2, and a few confidences
# crossed a bin edge. At 1e-9 both read 4.2489 (sweep fits stay at 1e-6: validation accuracy only).
REFIT_TOL = {Solver.CONVERGED: 1e-9}


@dataclass(frozen=True)
class SweepParams(CheckedParams):
    """The C sweep shared by linear and calibration."""

    solver: Solver = Solver.CONVERGED  # new studies; the Ericsson suite sets `reference`
    wd_start: float = -6.0
    wd_stop: float = 5.0
    num_wd: int = 45
    constraints: ClassVar[Constraints] = {
        "solver": Options(*Solver), "wd_start": Interval(float, -12, 12), "wd_stop": Interval(float, -12, 12),
        "num_wd": Interval(int, 1, 1000)}

    def sweep_key(self) -> tuple:
        return ("linear_sweep", *(getattr(self, f.name) for f in dataclasses.fields(SweepParams)))


@dataclass(frozen=True)
class Sweep:
    """The sweep's outcome: the solver after the last fit, the grid, validation scores, best index."""

    model: LogReg
    grid: np.ndarray
    val_scores: list[float]
    best: int
    iterations: list[int]  # L-BFGS iterations (Newton steps for `converged`) of each fit
    refit_from: LogReg  # the refit's warm start: the last fit (the reference's rule), or the chosen C's optimum

    @property
    def capped_fits(self) -> int:
        """Fits stopped by the iteration cap rather than by the gradient tolerance."""
        cap = self.model.max_iter
        return sum(n >= cap for n in self.iterations)

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


def make_solver(data: FeatureTask, solver: Solver) -> LogReg:
    """The chosen solver. The torch one keeps train, val and test features resident on the run's device
    across the sweep; when they and its working buffers (about five rows x classes arrays) would not fit
    in the device's free memory (torch's cached blocks included), it runs on the CPU instead."""
    max_iter, tol = SOLVER_STOPPING[solver]
    if solver in CPU_SOLVERS:
        return CPU_SOLVERS[solver](data.task, data.num_classes, max_iter, tol)
    resident = resident_bytes(data)
    device = data.device if fits(resident, data.device) else "cpu"
    if device != data.device:
        log.warning("linear: %.1f GB of features do not fit on %s; the sweep runs on the CPU", resident / 1e9,
                    data.device)
    return TorchLogReg(data.task, data.num_classes, max_iter, tol, device=device)


def resident_bytes(data: FeatureTask) -> int:
    """The fast solver's resident float32 arrays: train, val, test and the train+val refit's copy, and
    about five rows x classes working buffers (logits, probabilities, gradients). From the sizes alone:
    `data.trainval` would concatenate the splits just to measure them."""
    rows, dim = len(data.train) + len(data.val), data.train.x.shape[1]
    return 4 * dim * (2 * rows + len(data.test)) + 4 * 5 * rows * data.num_classes


def full_batch_bytes(data: FeatureTask, solver: Solver, fits: int = 1) -> int:
    """Memory a full-batch sweep of `fits` C values and its refit allocate beyond the features themselves:
    the train+val concatenation, then the float64 copy of it and about six rows x classes float64 arrays
    (reference), or, for the converged solver, the rows in its eigenbasis and the working arrays of the
    fits it runs in lockstep (`lockstep_bytes`), or the fast solver's resident arrays (`resident_bytes`)."""
    rows, dim = len(data.train) + len(data.val), data.train.x.shape[1]
    concatenated = 4 * rows * dim
    if solver == Solver.CONVERGED:  # the rows in the eigenbasis: float64, float32 and float32 squared
        return concatenated + (8 + 16) * rows * dim + lockstep_bytes(rows, data.num_classes, fits)
    if solver in CPU_SOLVERS:
        return concatenated + 8 * rows * dim + 6 * 8 * rows * data.num_classes
    return concatenated + resident_bytes(data)


def check_full_batch_memory(data: FeatureTask, solver: Solver, fits: int) -> None:
    """Refuse, before any work, a sweep that would not fit in the machine's available memory."""
    need, have = full_batch_bytes(data, solver, fits), host_available_bytes()
    if need > have:
        raise UserError(
            f"the full-batch '{solver}' solver needs about {need / 1e9:.1f} GB for {len(data.train) + len(data.val):,} "
            f"x {data.train.x.shape[1]} features and {data.num_classes} classes, and this machine has "
            f"{have / 1e9:.1f} GB available; probe data this size with the `linear_sgd` protocol (mini-batches "
            f"streamed from the feature cache), e.g. `protocols: [linear_sgd]` for this dataset")


def check_two_classes(train: Features) -> None:
    """A softmax needs two classes to separate; a train split with one would otherwise fail deep in a solver."""
    if train.y.ndim == 1 and len(np.unique(train.y)) < 2:
        raise UserError(f"the linear probe needs at least two classes among the {len(train):,} train labels, and "
                        f"they are all class {train.y[0] if len(train) else '(none)'}; check the dataset's train "
                        f"split (its labels, class folders or subset)")


def run_sweep(model: LogReg, train: Features, val: Features, metric: Metric, grid: np.ndarray) -> Sweep:
    """The warm-started sweep over the C grid on train, scored on val. As the reference, the first C
    whose score is strictly above every earlier one (and above 0) wins; a NaN score never wins."""
    if isinstance(model, ConvergedLogReg):
        return converged_sweep(model, train, val, metric, grid)
    val_scores, iterations = [np.nan] * len(grid), [0] * len(grid)
    for i in range(len(grid)):  # largest C first: a capped fit's result depends on where it starts
        val_scores[i] = score(metric, val.y, model.fit(train.x, train.y, grid[i]).decision_function(val.x))
        iterations[i] = model.iterations
    return Sweep(model, grid, val_scores, first_strict_best(val_scores), iterations, model)


def converged_sweep(model: ConvergedLogReg, train: Features, val: Features, metric: Metric, grid: np.ndarray
                    ) -> Sweep:
    """The sweep of the converged solver (`ConvergedLogReg.fit_grid`); the refit starts from the chosen C's
    optimum."""
    fitted = model.fit_grid(train.x, train.y, grid)
    val_scores = [score(metric, val.y, fit.decision_function(val.x)) for fit in fitted]
    best = first_strict_best(val_scores)
    return Sweep(fitted[-1], grid, val_scores, best, [fit.iterations for fit in fitted], fitted[best])


def first_strict_best(scores: list[float]) -> int:
    """The reference's `if score > best_score` from best_score = 0 (index 0 when nothing beats 0)."""
    best, best_score = 0, 0.0
    for i, value in enumerate(scores):
        if value > best_score:  # False for NaN
            best, best_score = i, value
    return best


def linear_sweep(data: FeatureTask, p: SweepParams) -> Sweep:
    """The sweep, computed once per inputs and sweep parameters."""
    def compute() -> Sweep:
        check_full_batch_memory(data, p.solver, p.num_wd)
        check_finite(data)
        check_two_classes(data.train)
        return run_sweep(make_solver(data, p.solver), data.train, data.val, data.metric,
                         c_grid(p.wd_start, p.wd_stop, p.num_wd))

    return data.shared.get_or_compute(p.sweep_key(), compute)


def refit_model(data: FeatureTask, p: SweepParams, on: str) -> LogReg:
    """The probe refit on `on` ("trainval" or "train") at the chosen C, warm-started from the sweep's
    last fit (on a copy, so the shared sweep stays as it was); fitted once per inputs."""
    def compute() -> LogReg:
        sweep = linear_sweep(data, p)
        fit_on = data.trainval if on == "trainval" else data.train
        model = sweep.refit_from.warm_copy()
        model.tol = REFIT_TOL.get(p.solver, model.tol)
        return model.fit(fit_on.x, fit_on.y, sweep.best_C)

    return data.shared.get_or_compute((*p.sweep_key(), "refit", on), compute)


def refit_logits(data: FeatureTask, p: SweepParams, split: str, on: str) -> np.ndarray:
    """Decision values on `split` of the probe refit on `on` (see `refit_model`)."""
    return data.shared.get_or_compute((*p.sweep_key(), "refit", on, split),
                                      lambda: refit_model(data, p, on).decision_function(getattr(data, split).x))


def reference_under_permutation(data: FeatureTask, p: SweepParams, seed: int) -> tuple[float, float]:
    """(chosen C, test score) of the reference mode with the train and train+val rows in a random order,
    as the reference's shuffling loaders handed them over: its fits stop after 100 iterations, so the
    result depends on the order (the score of a converged fit does not)."""
    rng = np.random.default_rng(seed)
    sweep = run_sweep(make_solver(data, Solver.REFERENCE), permuted(data.train, rng), data.val, data.metric,
                      c_grid(p.wd_start, p.wd_stop, p.num_wd))
    trainval = permuted(data.trainval, rng)
    model = sweep.model.warm_copy().fit(trainval.x, trainval.y, sweep.best_C)
    return float(sweep.best_C), score(data.metric, data.test.y, model.decision_function(data.test.x))


def permuted(split: Features, rng: np.random.Generator) -> Features:
    order = rng.permutation(len(split))
    return Features(split.x[order], split.y[order])
