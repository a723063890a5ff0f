"""Calibration of the linear probe (Ericsson et al. report it): expected calibration error (15 equal-
width confidence bins) of the probe's softmax probabilities on the test split, before and after
temperature scaling.

`mode: ericsson` (the default) reproduces the reference: the probe refit on train+val; the temperature
fitted by 5-fold cross-validation on the test split itself (indices shuffled with np.random.seed(0);
fit on one fold, ECE on the other four; the mean of the five). As there, temperature scaling is netcal
1.1.3's: it sees float32 softmax probabilities, not logits, and works on log(clip(p, eps, 1 - eps))
(see `netcal_log_probabilities`), so logit gaps beyond about 36 nats are flattened before scaling.

The probe comes from the linear protocol's sweep with the same `solver` (default `converged`; set
`solver: reference` as well for the reference's own probe).

`mode: val` is the cleaner variant: the probe trained on train at the selected C, the temperature
fitted by exact maximum likelihood on the validation split's logits, ECE on test. Not defined for
multi-label data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
import torch

from benchmark.metrics import SCORING, binned_ece
from benchmark.outputs import PerExample
from benchmark.params import Constraints, Interval, Options
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, require_test_split, softmax
from benchmark.protocols._linear_sweep import SWEEP, SweepParams, linear_sweep, refit_logits
from benchmark.vocab import Metric, TaskType

def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """sum over equal-width confidence bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|."""
    return binned_ece(probabilities.max(1), probabilities.argmax(1) == labels, bins)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T)."""
    z = torch.as_tensor(logits, dtype=torch.float64)  # device: one temperature on the CPU in float64
    y = torch.as_tensor(labels, dtype=torch.long)  # device: with z
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # device: with z
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


EPS = float(np.finfo(np.float64).eps)  # netcal's epsilon: np.finfo(np.float).eps


def float32_probabilities(logits: np.ndarray) -> np.ndarray:
    """The reference's softmax: torch's, on float32 decision values."""
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=1).numpy()  # device: the reference's CPU softmax


def netcal_log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """netcal 1.1.3's `_inverse_softmax`: log(clip(p, eps, 1 - eps)). Under the NumPy 1.x the reference
    ran, clipping a float32 array by float64 scalars stays float32, so the bounds are float32(eps) and
    float32(1 - eps) = 1.0, and the log is taken in float32."""
    p = np.asarray(probabilities, dtype=np.float32)
    return np.log(np.clip(p, np.float32(EPS), np.float32(1.0 - EPS)))


def netcal_temperature(log_probabilities: np.ndarray, labels: np.ndarray) -> float:
    """netcal 1.1.3's TemperatureScaling.fit: the scale w (= 1 / T) minimising the mean negative
    log-likelihood of softmax(w * inputs), each confidence clipped to [eps, 1 - eps] before the log,
    by scipy.optimize.minimize from w = 1 at its defaults (BFGS, finite-difference gradient)."""
    from scipy.optimize import minimize

    inputs = log_probabilities.astype(np.float64)
    picked = np.arange(len(labels))

    def loss(w: np.ndarray) -> float:
        confidences = np.clip(softmax(inputs * w), EPS, 1.0 - EPS)
        return float(-np.log(confidences[picked, labels]).sum() / len(labels))

    return 1.0 / float(minimize(loss, x0=np.array(1.0)).x[0])


def reference_folds(n: int, folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The reference's folds: shuffle range(n) with np.random.seed(seed), cut into chunks of n // folds,
    keep the first `folds` chunks (a remainder is left out)."""
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    size = n // folds
    return [indices[i * size:(i + 1) * size] for i in range(folds)]


def cross_validated_scaled_ece(logits: np.ndarray, labels: np.ndarray, bins: int, folds: int
                               ) -> tuple[float, list[float]]:
    """The reference's cross_validate_temp_scaling, with netcal's temperature scaling on each fold."""
    chunks = reference_folds(len(labels), folds)
    inputs = netcal_log_probabilities(float32_probabilities(logits))
    eces, temperatures = [], []
    for i, fit_idx in enumerate(chunks):
        rest = np.concatenate([c for j, c in enumerate(chunks) if j != i])
        temperature = netcal_temperature(inputs[fit_idx], labels[fit_idx])
        temperatures.append(temperature)
        scaled = softmax(inputs[rest].astype(np.float64), temperature)
        eces.append(expected_calibration_error(scaled, labels[rest], bins))
    return float(np.mean(eces)), temperatures


class Mode(StrEnum):
    ERICSSON = "ericsson"  # the reference: refit on train+val, temperature by 5-fold CV on test
    VAL = "val"  # probe on train, temperature on val, ECE on test


@dataclass(frozen=True)
class CalibrationParams(SweepParams):
    mode: Mode = Mode.ERICSSON
    bins: int = 15
    folds: int = 5
    constraints: ClassVar[Constraints] = {**SweepParams.constraints, "mode": Options(*Mode),
                                          "bins": Interval(int, 1, 1000), "folds": Interval(int, 2, 100)}


def calibrated_logits(data: FeatureTask, p: CalibrationParams) -> tuple[np.ndarray, float, list[float]]:
    """Test logits and the scaled ECE of the mode's temperature(s); the probe comes from the shared sweep."""
    if p.mode == Mode.VAL:
        temperature = fit_temperature(refit_logits(data, p, "val", on="train"), data.val.y)
        logits = refit_logits(data, p, "test", on="train")
        return logits, expected_calibration_error(softmax(logits, temperature), data.test.y, p.bins), [temperature]
    logits = refit_logits(data, p, "test", on="trainval")
    scaled, temperatures = cross_validated_scaled_ece(logits, data.test.y, p.bins, p.folds)
    return logits, scaled, temperatures


@PROTOCOLS.register
class Calibration(Protocol):
    name = "calibration"
    # 2.0: ericsson mode scales as netcal 1.1.3 (float32 probabilities, clipped logs)
    # 2.1: its reference sweep is linear 2.1's (C's exp and log)
    version = "2.1"
    tasks = (TaskType.MULTICLASS,)
    Params = CalibrationParams
    selects_on_val = True
    components = (SWEEP, SCORING)

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        require_test_split(data, self.name)
        p, sweep = self.params, linear_sweep(data, self.params)
        logits, scaled, temperatures = calibrated_logits(data, p)
        probabilities = float32_probabilities(logits) if p.mode == Mode.ERICSSON else softmax(logits)
        ece = expected_calibration_error(probabilities, data.test.y, p.bins)
        per_example = PerExample(test_correct=probabilities.argmax(1) == data.test.y,
                                 test_confidence=probabilities.max(1))
        return ProtocolResult(value=100.0 * ece, metric=Metric.ECE, chosen={"C": float(sweep.best_C)},
                              details={"ece_scaled": 100.0 * scaled, "temperatures": temperatures, "mode": p.mode,
                                       "bins": p.bins}, per_example=per_example)
