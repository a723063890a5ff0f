"""Hyperparameter search over a fixed list of candidates: the full grid, or successive halving.

Successive halving (Jamieson & Talwalkar 2016; Li et al.'s Hyperband uses it as its inner loop) trains
every candidate at a small budget, keeps the best 1/rate, trains those at rate x the budget, and so on
until the survivors train at the full budget, where the best is chosen. Each rung trains from scratch
with its own schedule (a cosine schedule is not resumable at another length). With 20 candidates, rate 3
and 5,000 steps: 20 runs of 555 steps, 7 of 1,666 and 3 of 5,000, i.e. 37,762 steps instead of 100,000.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from benchmark import distributed


class Search(StrEnum):
    GRID = "grid"
    HALVING = "halving"


@dataclass(frozen=True)
class Rung:
    steps: int
    scores: dict[int, float]  # candidate index -> validation score at this rung


@dataclass(frozen=True)
class SearchResult:
    best: int  # index of the chosen candidate
    rungs: list[Rung] = field(default_factory=list)
    ranks: int = 1  # how many torchrun ranks shared the runs out

    def total_steps(self) -> int:
        return sum(r.steps * len(r.scores) for r in self.rungs)

    def record(self, candidates: Sequence[Any]) -> list[dict]:
        """The rungs as stored in a row: each rung's budget and every candidate's score there."""
        return [{"steps": r.steps, "scores": [[*candidates[i], s] for i, s in r.scores.items()]} for r in self.rungs]


def halving_budgets(candidates: int, steps: int, rate: int) -> list[tuple[int, int]]:
    """(steps, candidates alive) per rung: the alive count divides by `rate` (rounding up) until one
    would be left; the last rung runs the full `steps`, each earlier one 1/rate of the next (at least 1)."""
    alive = [candidates]
    while alive[-1] > 1 and math.ceil(alive[-1] / rate) < alive[-1]:
        alive.append(math.ceil(alive[-1] / rate))
    alive = alive[:-1] if len(alive) > 1 else alive  # the lone survivor is already chosen
    last = len(alive) - 1
    return [(max(1, steps // rate ** (last - r)), n) for r, n in enumerate(alive)]


def best_of(scores: dict[int, float]) -> int:
    """The best score's candidate; ties (and NaN, which never wins) go to the earlier candidate."""
    return max(scores, key=lambda i: (-math.inf if math.isnan(scores[i]) else scores[i], -i))


def top(scores: dict[int, float], keep: int) -> list[int]:
    ranked = sorted(scores, key=lambda i: (-math.inf if math.isnan(scores[i]) else scores[i], -i), reverse=True)
    return sorted(ranked[:keep])


Scores = Callable[[list[int], int], dict[int, float]]  # (candidates, steps) -> validation score of each


def one_by_one(evaluate: Callable[[int, int], float]) -> Scores:
    """Scores from `evaluate(candidate, steps)`, run in turn (a runner may instead share them out)."""
    return lambda candidates, steps: {i: evaluate(i, steps) for i in candidates}


def shared_out(evaluate: Callable[[int, int], float]) -> Scores:
    """Scores with the candidates shared out among a torchrun job's ranks (rank r takes every world-th
    one) and gathered on every rank, so all ranks take the same next step."""
    def scores_of(candidates: list[int], steps: int) -> dict[int, float]:
        info = distributed.current()
        mine = {i: evaluate(i, steps) for i in candidates[info.rank::info.world_size]}
        return distributed.gather_dicts(mine)

    return scores_of


def successive_halving(candidates: int, steps: int, rate: int, scores_of: Scores) -> SearchResult:
    """Validation scores are higher-is-better; `scores_of` trains the candidates it is given at `steps`."""
    rungs, alive = [], list(range(candidates))
    budgets = halving_budgets(candidates, steps, rate)
    for number, (budget, _) in enumerate(budgets):
        scores = scores_of(alive, budget)
        rungs.append(Rung(budget, {i: scores[i] for i in alive}))
        if number + 1 < len(budgets):
            alive = top(rungs[-1].scores, budgets[number + 1][1])
    return SearchResult(best_of(rungs[-1].scores), rungs)


def grid_search(candidates: int, steps: int, scores_of: Scores) -> SearchResult:
    scores = scores_of(list(range(candidates)), steps)
    rung = Rung(steps, {i: scores[i] for i in range(candidates)})
    return SearchResult(best_of(rung.scores), [rung])
