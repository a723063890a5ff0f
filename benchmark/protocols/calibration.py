"""Calibration of the linear probe (Ericsson et al. report it): expected calibration error (15 equal-
width confidence bins) of the probe's softmax probabilities on the test split, before and after
temperature scaling.

`mode: ericsson` (the default) reproduces the reference: the probe refit on train+val; the temperature
fitted by 5-fold cross-validation on the test split itself (indices shuffled with np.random.seed(0);
fit on one fold, ECE on the other four; the mean of the five). `mode: val` is the cleaner variant:
the probe trained on train at the selected C, the temperature fitted on the validation split, ECE on
test. Not defined for multi-label data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS
from benchmark.protocols.base import ProtocolResult, TaskData
from benchmark.protocols.linear import LinearProbe

MODES = ("ericsson", "val")


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """sum over equal-width confidence bins of |bin| / n * |accuracy(bin) - mean confidence(bin)|."""
    confidence = probabilities.max(1)
    correct = probabilities.argmax(1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T > 0 minimising the negative log-likelihood of softmax(logits / T)."""
    z = torch.as_tensor(logits, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_t.detach().exp())


def reference_folds(n: int, folds: int = 5, seed: int = 0) -> list[np.ndarray]:
    """The reference's folds: shuffle range(n) with np.random.seed(seed), cut into chunks of n // folds,
    keep the first `folds` chunks (a remainder is left out)."""
    indices = np.arange(n)
    np.random.RandomState(seed).shuffle(indices)
    size = n // folds
    return [indices[i * size:(i + 1) * size] for i in range(folds)]


def cross_validated_scaled_ece(logits: np.ndarray, labels: np.ndarray, bins: int, folds: int
                               ) -> tuple[float, list[float]]:
    chunks = reference_folds(len(labels), folds)
    eces, temperatures = [], []
    for i, fit_idx in enumerate(chunks):
        rest = np.concatenate([c for j, c in enumerate(chunks) if j != i])
        temperature = fit_temperature(logits[fit_idx], labels[fit_idx])
        temperatures.append(temperature)
        eces.append(expected_calibration_error(softmax(logits[rest], temperature), labels[rest], bins))
    return float(np.mean(eces)), temperatures


@PROTOCOLS.register("calibration")
class Calibration(LinearProbe):
    name = "calibration"
    version = "1.0"
    tasks = ("multiclass",)

    @dataclass(frozen=True)
    class Params(LinearProbe.Params):
        mode: str = "ericsson"
        bins: int = 15
        folds: int = 5

    def evaluate(self, data: TaskData) -> ProtocolResult:
        if self.params.mode not in MODES:
            raise UserError(f"calibration mode must be one of {MODES}, got {self.params.mode!r}")
        model, grid, _, best = self.select(data)
        p = self.params
        if p.mode == "val":
            model.fit(data.train.x, data.train.y, grid[best])
            temperatures = [fit_temperature(model.decision_function(data.val.x), data.val.y)]
            logits = model.decision_function(data.test.x)
            scaled = expected_calibration_error(softmax(logits, temperatures[0]), data.test.y, p.bins)
        else:
            trainval = data.trainval
            model.fit(trainval.x, trainval.y, grid[best])
            logits = model.decision_function(data.test.x)
            scaled, temperatures = cross_validated_scaled_ece(logits, data.test.y, p.bins, p.folds)
        ece = expected_calibration_error(softmax(logits), data.test.y, p.bins)
        return ProtocolResult(value=100.0 * ece, metric="ece", chosen={"C": float(grid[best])},
                              details={"ece_scaled": 100.0 * scaled, "temperatures": temperatures, "mode": p.mode,
                                       "bins": p.bins})
