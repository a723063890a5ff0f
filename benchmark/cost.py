"""What a suite's cells cost, estimated in images through the encoder (forward-pass equivalents), from
the official split sizes: the weight `suite distill` gives a column when it breaks ties, and the size of a
lite suite against its parent.

Features are extracted once per (dataset, preprocessing) and shared by every column that reads them. A
fine-tune cell trains (grid + 1) runs x steps x batch images, each a forward and a backward pass (about
three forwards). Solver, k-NN and episode time is not counted: on a GPU it is small beside these, and it
does not scale with the encoder.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable

from benchmark.config import Suite, Task
from benchmark.data import dataset_spec
from benchmark.data.label_fractions import LIST_NAMES
from benchmark.data.splits import HOLDOUT_FRACTION
from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS, make_protocol
from benchmark.protocols._search import Search, halving_budgets
from benchmark.vocab import EncoderWork

TRAINING_PASSES = 3  # a training image: one forward and a backward of about twice its cost


def task_of(suite: Suite, column: str, dataset: str) -> Task:
    tasks = [t for t in suite.tasks(dataset) if t.protocol == column] if dataset in suite.datasets else []
    if not tasks:
        raise UserError(f"suite {suite.name} has no cell {column} on {dataset}")
    return tasks[0]


def dataset_images(dataset: str, options: dict) -> int:
    """Images over the dataset's splits (`split_images`)."""
    return sum(split_images(dataset, options).values())


def split_images(dataset: str, options: dict) -> dict[str, int]:
    """Images per split: the official sizes, else (a dataset shipped with a package) its splits counted;
    capped by the suite's `train_subset` / `test_subset`."""
    return dict(counted_splits(dataset, json.dumps(options, sort_keys=True, default=str)))


@functools.lru_cache(maxsize=None)
def counted_splits(dataset: str, options_json: str) -> tuple[tuple[str, int], ...]:  # counting loads it: once
    options = json.loads(options_json)
    spec = dataset_spec(dataset, options)
    sizes = dict(spec.official_sizes) or ({s: len(spec.load(s, None)) for s in spec.splits} if not spec.needs_root
                                          else {})
    caps = {"train": options.get("train_subset"), "test": options.get("test_subset")}
    if "train" in sizes and options.get("train_list") in LIST_NAMES:  # an official label list: its names
        sizes["train"] = LIST_NAMES[options["train_list"]]
    if "train" in sizes and options.get("train_fraction"):
        sizes["train"] = round(sizes["train"] * options["train_fraction"])
    return tuple((split, min(n, caps.get(split) or n)) for split, n in sizes.items())


def augmented_images(task: Task, dataset: str, options: dict) -> int:
    """Images a linear_sgd cell in augment mode encodes (forward passes only): every epoch over the fit split,
    then over train+val for the retrain, plus val and test once each for the heads' predictions. Without an
    official val split, the hold-out takes 20% of train."""
    params = make_protocol(task.kind, task.params).params
    sizes = split_images(dataset, options)
    train, val = sizes.get("train", 0), sizes.get("val", 0)
    held_out = val or int(HOLDOUT_FRACTION * train)
    fit, refit = (train, train + val) if val else (train - held_out, train)
    epochs = params.epochs * sum(min(n, params.steps_per_epoch(n) * params.batch_size) for n in (fit, refit))
    return epochs + held_out + sizes.get("test", 0)


def trained_images(task: Task) -> int:
    """Images a fine-tune cell trains on: every (lr, w) run at its budget, plus the train+val retrain, and
    all of it again for each `stability: N` rerun."""
    params = PROTOCOLS.get(task.kind).Params(**task.params)
    grid = len(getattr(params, "lrs", (0,))) * len(getattr(params, "regularisation", (0,)))
    if grid > 1 and getattr(params, "search", Search.GRID) == Search.HALVING:
        runs = sum(steps * alive for steps, alive in halving_budgets(grid, params.steps, params.halving_rate))
        return (runs + params.steps) * params.batch_size * (1 + task.stability)
    return (grid + (grid > 1)) * params.steps * params.batch_size * (1 + task.stability)


def cells_cost(suite: Suite, cells: Iterable[tuple[str, str]]) -> float:
    """Images through the encoder for the (column, dataset) cells together."""
    extractions, training = set(), 0
    for column, dataset in cells:
        task = task_of(suite, column, dataset)
        work = make_protocol(task.kind, task.params).encoder_work()
        if work == EncoderWork.FORWARD:
            training += augmented_images(task, dataset, suite.datasets[dataset])  # forward passes only
        elif work == EncoderWork.TRAINING:
            training += trained_images(task) * TRAINING_PASSES
        else:
            extractions.add((dataset, repr(sorted(task.preprocessing.items()))))
    return training + sum(dataset_images(d, suite.datasets[d]) for d, _ in extractions)
