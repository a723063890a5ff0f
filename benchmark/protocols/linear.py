"""Ericsson et al.'s many-shot linear evaluation on frozen, unstandardised features.

Sweep weight decay wd over logspace(-6, 5, 45) with C = 1/wd (C from 1e6 down to 1e-5), warm
starting each fit from the previous one; keep the first C with the strictly best validation score;
refit on train+val with it and score the test split with the dataset's metric.

`solver: converged` (the default) runs every fit of the sweep to convergence (Newton-CG on the
reference's objective, stopped in float64), so the chosen C and the score are a property of the features, not of row
order or rounding. `solver: reference` runs the reference's rule with scipy's L-BFGS-B whatever
scikit-learn is installed, scikit-learn 1.3.2's iterates bit for bit (the Ericsson suite's choice, to
compare with the paper); `solver: fast` runs our torch L-BFGS on the same objective. Those two stop
every fit after 100 iterations, as the reference, so at large C their result depends on row order and
rounding. `permutations: P` re-runs the reference mode with P random row orders and records the range
of its score: the protocol's own instability, to read beside any difference between encoders.

The sweep and the refit live in `_linear_sweep` and are shared through `FeatureTask.shared`:
calibration, which probes the same features with the same sweep, reuses them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.params import Constraints, Interval
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._linear_sweep import SWEEP, SweepParams, linear_sweep, reference_under_permutation, refit_logits
from benchmark.protocols.base import FeatureTask, Protocol, ProtocolResult, require_test_split, restricted


@dataclass(frozen=True)
class LinearParams(SweepParams):
    permutations: int = 0  # reference-mode re-runs with shuffled rows, for the protocol's own spread
    constraints: ClassVar[Constraints] = {**SweepParams.constraints, "permutations": Interval(int, 0, 100)}


@PROTOCOLS.register
class LinearProbe(Protocol):
    name = "linear"
    # 2.0: the reference solver; two-class problems as a 2-class softmax (as the reference)
    # 2.1: the reference solver's loss calls C's exp and log: scikit-learn 1.3.2's iterates bit for bit
    version = "2.1"
    Params = LinearParams
    selects_on_val = True
    restricts_classes = True
    components = (SWEEP,)

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        require_test_split(data, self.name)
        sweep = linear_sweep(data, self.params)
        outputs = restricted(refit_logits(data, self.params, "test", on="trainval"), data.test_classes)
        details = {"val_score": sweep.val_scores[sweep.best], "val_curve": sweep.val_scores,
                   "solver": self.params.solver, "sweep_iterations": sweep.iterations, "capped_fits": sweep.capped_fits,
                   **self.permutation_spread(data)}
        return ProtocolResult(value=score(data.metric, data.test.y, outputs), metric=data.metric,
                              chosen={"C": float(sweep.best_C), "wd": float(1.0 / sweep.best_C)}, details=details,
                              per_example=PerExample(correct_per_example(data.metric, data.test.y, outputs)))

    def permutation_spread(self, data: FeatureTask) -> dict[str, Any]:
        if not self.params.permutations:
            return {}
        runs = [reference_under_permutation(data, self.params, seed) for seed in range(self.params.permutations)]
        scores = [value for _, value in runs]
        return {"permutation_C": [C for C, _ in runs], "permutation_scores": scores,
                "permutation_spread": max(scores) - min(scores)}
