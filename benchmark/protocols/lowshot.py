"""Low-shot linear probes: the linear protocol's logistic regression trained on k labelled images per class,
k = 1, 2, 4, 8, 16 by default, several seeded draws each: the curve CLIP's paper sets against zero-shot
(its Figure 6) and DINOv3's few-shot setting.

For each k and draw, k images per class are drawn from the train split (without replacement, with a
generator seeded by (seed, k, draw); the drawn train positions are kept in the row), C is chosen on the
validation split exactly as the linear protocol chooses it (the same sweep, solver and grid), and the
probe refit at that C on the k-shot set alone is scored on test. Validation is the dataset's official val
split, else the seeded 20% hold-out of train, which the draws never touch. The headline is the mean over
draws at the largest k (or `headline:`); each k's mean, 95% CI over draws (1.96 std / sqrt(draws)), scores
and chosen Cs are in `details`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchmark.errors import UserError
from benchmark.metrics import mean_ci95, score
from benchmark.outputs import PerExample
from benchmark.params import Constraints, Each, Interval, Optional
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._linear_sweep import SWEEP, SweepParams, linear_sweep, refit_logits
from benchmark.protocols.base import Features, FeatureTask, Protocol, ProtocolResult, SharedWork, require_test_split
from benchmark.vocab import TaskType


@dataclass(frozen=True)
class LowShotParams(SweepParams):
    shots: tuple[int, ...] = (1, 2, 4, 8, 16)
    draws: int = 5
    seed: int = 0
    headline: int | None = None  # the k whose mean is the cell's value (default: the largest)
    constraints: ClassVar[Constraints] = {**SweepParams.constraints, "shots": Each(Interval(int, 1, 10_000)),
                                          "draws": Interval(int, 1, 1000), "seed": Interval(int, 0),
                                          "headline": Optional(Interval(int, 1, 10_000))}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.headline is not None and self.headline not in self.shots:
            raise UserError(f"parameter headline={self.headline} must be one of shots {list(self.shots)}")


def draw_shots(labels: np.ndarray, k: int, num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of k examples of every class, drawn without replacement (sorted by class, then position)."""
    counts = np.bincount(labels, minlength=num_classes)
    if counts.min() < k:
        short = [c for c in range(num_classes) if counts[c] < k]
        raise UserError(f"lowshot: {k} shots per class, but class(es) {short[:5]} have only "
                        f"{counts[short].min()} train image(s); lower the largest value of shots")
    return np.concatenate([np.sort(rng.choice(np.flatnonzero(labels == c), k, replace=False))
                           for c in range(num_classes)])


@PROTOCOLS.register
class LowShotProbe(Protocol):
    name = "lowshot"
    version = "1.0"
    Params = LowShotParams
    tasks = (TaskType.MULTICLASS,)
    selects_on_val = True
    components = (SWEEP,)

    def evaluate(self, data: FeatureTask) -> ProtocolResult:
        require_test_split(data, self.name)
        p = self.params
        runs = {k: [self.one_draw(data, k, draw) for draw in range(p.draws)] for k in sorted(set(p.shots))}
        headline = p.headline or max(p.shots)
        curve = {str(k): dict(zip(("mean", "ci95"), mean_ci95([s for s, _, _ in draws])),
                              scores=[s for s, _, _ in draws], C=[c for _, c, _ in draws],
                              train_positions=[positions for _, _, positions in draws])
                 for k, draws in runs.items()}
        scores = curve[str(headline)]["scores"]
        return ProtocolResult(value=float(np.mean(scores)), metric=data.metric, chosen={"shots": headline},
                              details={"curve": curve, "solver": p.solver},
                              per_example=PerExample(episode_accuracies=tuple(round(s, 4) for s in scores)))

    def one_draw(self, data: FeatureTask, k: int, draw: int) -> tuple[float, float, list[int]]:
        """(test score, chosen C, drawn train positions) of one k-shot probe."""
        rng = np.random.default_rng([self.params.seed, k, draw])
        positions = draw_shots(np.asarray(data.train.y), k, data.num_classes, rng)
        shots = dataclasses.replace(data, train=Features(data.train.x[positions], data.train.y[positions]),
                                    shared=SharedWork())
        sweep = linear_sweep(shots, self.params)
        outputs = refit_logits(shots, self.params, "test", on="train")
        return score(data.metric, data.test.y, outputs), float(sweep.best_C), positions.tolist()
