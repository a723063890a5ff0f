"""Fine-tune hyperparameter search: the grid, and successive halving over the same (lr, w) pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.protocols import Features, ModelTask, make_protocol
from benchmark.protocols._search import grid_search, halving_budgets, one_by_one, successive_halving


def test_the_ericsson_grid_halves_to_three_runs_at_the_full_budget():
    budgets = halving_budgets(20, 5000, 3)
    assert budgets == [(555, 20), (1666, 7), (5000, 3)]
    assert sum(steps * n for steps, n in budgets) == 37_762  # against 20 x 5,000 = 100,000 for the grid
    assert halving_budgets(3, 100, 3) == [(100, 3)]  # too few to halve: the grid
    assert halving_budgets(20, 40, 3) == [(4, 20), (13, 7), (40, 3)]


def test_halving_keeps_the_best_third_and_chooses_at_the_full_budget():
    quality = [0.2, 0.9, 0.5, 0.7, 0.1, 0.95, 0.3, 0.6, 0.4]
    calls = []

    def evaluate(candidate, steps):
        calls.append((candidate, steps))
        return quality[candidate] * steps / (steps + 50)

    result = successive_halving(9, 900, 3, one_by_one(evaluate))
    assert [(r.steps, sorted(r.scores)) for r in result.rungs] == [(300, list(range(9))), (900, [1, 3, 5])]
    assert result.best == 5 and result.total_steps() == 9 * 300 + 3 * 900 and len(calls) == 12
    assert calls[-3:] == [(1, 900), (3, 900), (5, 900)]


def test_a_diverged_candidate_never_wins_and_ties_go_to_the_earlier_one():
    scores = {0: math.nan, 1: 0.5, 2: 0.5, 3: 0.1}
    assert grid_search(4, 10, one_by_one(lambda c, s: scores[c])).best == 1
    assert successive_halving(4, 9, 3, one_by_one(lambda c, s: scores[c])).best == 1


def tiny_finetune_task(encoder_spec="timm:resnet18"):
    from benchmark.data import DATASETS, load_split
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.inputs import concat_images
    from benchmark.data.splits import holdout_split

    encoder = load_encoder(encoder_spec)
    spec = DATASETS.get("lfw_faces")
    train, test = load_split(spec, "train", None), load_split(spec, "test", None)
    pool = concat_images([train, test])
    idx = np.arange(len(pool))
    tr, va = holdout_split(len(train))
    f = lambda i: Features(idx[i], pool.labels[i])  # noqa: E731
    return ModelTask(f(tr), f(va), f(np.arange(len(train), len(pool))), 2, "top1", images=pool, encoder=encoder,
                     preprocessing=encoder.preprocessing.with_overrides({"input_size": 32}))


def test_finetune_with_halving_trains_each_rung_at_its_budget_and_records_the_rungs(monkeypatch):
    from benchmark.protocols.finetune import FineTune

    steps_run = []
    original = FineTune.train_steps

    def spy(self, data, model, optimizer, indices, targets, steps, info):
        steps_run.append(steps)
        return original(self, data, model, optimizer, indices, targets, steps, info)

    monkeypatch.setattr(FineTune, "train_steps", spy)
    params = {"steps": 9, "batch_size": 16, "lrs": [0.05, 0.01], "regularisation": [0.0, 1e-4], "search": "halving"}
    result = make_protocol("finetune", params).evaluate(tiny_finetune_task())
    assert steps_run == [3, 3, 3, 3, 9, 9, 9]  # 4 pairs at 3 steps, the best 2 at 9, then the train+val retrain
    rungs = result.details["rungs"]
    assert [r["steps"] for r in rungs] == [3, 9] and [len(r["scores"]) for r in rungs] == [4, 2]
    finalists = {tuple(s[:2]): s[2] for s in rungs[1]["scores"]}
    assert (result.chosen["lr"], result.chosen["regularisation"]) in finalists
    assert result.details["val_score"] == max(finalists.values()) and result.details["search_steps"] == 30


def test_search_enters_the_cell_key_only_when_it_is_not_the_grid():
    grid = make_protocol("finetune", {}).params.key_params()
    assert "search" not in grid and "halving_rate" not in grid and grid["steps"] == 5000
    halving = make_protocol("finetune", {"search": "halving"}).params.key_params()
    assert halving["search"] == "halving" and halving["halving_rate"] == 3
    with pytest.raises(UserError, match="halving_rate=1 is invalid"):
        make_protocol("finetune", {"search": "halving", "halving_rate": 1})
    with pytest.raises(UserError, match="search='hyperband' is invalid"):
        make_protocol("finetune", {"search": "hyperband"})
