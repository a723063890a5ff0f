"""Ericsson et al.'s many-shot linear evaluation on frozen, unstandardised features.

Sweep weight decay wd over logspace(-6, 5, 45) with C = 1/wd (C from 1e6 down to 1e-5), warm
starting each fit from the previous one; keep the first C with the strictly best validation score;
refit on train+val with it and score the test split with the dataset's metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchmark.errors import UserError
from benchmark.metrics import packed_correct, score
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._logreg import SklearnLogReg, TorchLogReg
from benchmark.protocols.base import Protocol, ProtocolResult, TaskData, check_finite, require_test_split

SOLVERS = {"sklearn": SklearnLogReg, "torch": TorchLogReg}


def c_grid(wd_start: float, wd_stop: float, num: int) -> np.ndarray:
    """C = 1 / wd for wd = logspace(start, stop, num), in sweep order (largest C first), computed in
    float32 like the reference's torch.logspace."""
    weight_decays = np.logspace(wd_start, wd_stop, num).astype(np.float32)
    return 1.0 / weight_decays.astype(np.float64)


@PROTOCOLS.register("linear")
class LinearProbe(Protocol):
    name = "linear"
    version = "1.0"

    @dataclass(frozen=True)
    class Params:
        solver: str = "sklearn"  # "sklearn" is the reference path; "torch" the fast one (same objective)
        wd_start: float = -6.0
        wd_stop: float = 5.0
        num_wd: int = 45
        max_iter: int = 100
        tol: float = 1e-4

    def evaluate(self, data: TaskData) -> ProtocolResult:
        model, grid, val_scores, best = self.select(data)
        trainval = data.trainval
        model.fit(trainval.x, trainval.y, grid[best])
        outputs = model.decision_function(data.test.x)
        return ProtocolResult(value=score(data.metric, data.test.y, outputs), metric=data.metric,
                              chosen={"C": float(grid[best]), "wd": float(1.0 / grid[best])},
                              details={"val_score": val_scores[best], "val_curve": val_scores,
                                       "solver": self.params.solver,
                                       "test_correct": packed_correct(data.metric, data.test.y, outputs)})

    def select(self, data: TaskData) -> tuple[SklearnLogReg | TorchLogReg, np.ndarray, list[float], int]:
        """The warm-started sweep over the C grid on train, scored on val: (model, grid, val scores,
        index of the first strictly best C). The model holds the last fit of the sweep."""
        check_finite(data)
        require_test_split(data, self.name)
        if self.params.solver not in SOLVERS:
            raise UserError(f"linear solver must be one of {sorted(SOLVERS)}, got {self.params.solver!r}")
        model = SOLVERS[self.params.solver](data.task, data.num_classes, self.params.max_iter, self.params.tol)
        grid = c_grid(self.params.wd_start, self.params.wd_stop, self.params.num_wd)
        val_scores = [self._fit_score(model, data, C) for C in grid]
        return model, grid, val_scores, int(np.argmax(val_scores))  # argmax: the first of equal maxima

    @staticmethod
    def _fit_score(model, data: TaskData, C: float) -> float:
        model.fit(data.train.x, data.train.y, C)
        return score(data.metric, data.val.y, model.decision_function(data.val.x))
