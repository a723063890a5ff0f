"""Ericsson et al.'s many-shot linear evaluation on frozen, unstandardised features.

Sweep weight decay wd over logspace(-6, 5, 45) with C = 1/wd (C from 1e6 down to 1e-5), warm
starting each fit from the previous one; keep the first C with the strictly best validation score;
refit on train+val with it and score the test split with the dataset's metric.

The sweep and the refit live in `_linear_sweep` and are shared through `FeatureTask.shared`:
calibration, which probes the same features with the same sweep, reuses them.
"""

from __future__ import annotations

from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._linear_sweep import SweepParams, linear_sweep, refit_logits
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, require_test_split


@PROTOCOLS.register
class LinearProbe(Protocol):
    name = "linear"
    version = "1.0"
    Params = SweepParams

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        require_test_split(data, self.name)
        sweep = linear_sweep(data, self.params)
        outputs = refit_logits(data, self.params, "test", on="trainval")
        return ProtocolResult(value=score(data.metric, data.test.y, outputs), metric=data.metric,
                              chosen={"C": float(sweep.best_C), "wd": float(1.0 / sweep.best_C)},
                              details={"val_score": sweep.val_scores[sweep.best], "val_curve": sweep.val_scores,
                                       "solver": self.params.solver, "sweep_iterations": sweep.iterations},
                              per_example=PerExample(correct_per_example(data.metric, data.test.y, outputs)))
