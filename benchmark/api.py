"""The library's front door for a model in memory: evaluate it on a suite with the same planner, cache,
results store and protocols as the command line, and get its rows back as a DataFrame.

    from benchmark.api import evaluate_model
    rows = evaluate_model(model, "offline", name="my-run", step=epoch, protocols=["knn", "linear"])

Inside a plain training loop, `EvaluateEvery` does the same every few epochs and keeps the rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from benchmark.config import Suite, load_suite
from benchmark.encoders.in_memory import encoder_from_module
from benchmark.errors import UserError
from benchmark.pipeline.runner import RunOptions, evaluate
from benchmark.preprocessing import Preprocessing
from benchmark.results import DEFAULT_RESULTS
from benchmark.results.series import series_label


def evaluate_model(model: nn.Module, suite: str | Suite = "offline", *, name: str, step: int | None = None,
                   preprocessing: Preprocessing | None = None, device: str = "cpu", protocols: Sequence[str] = (),
                   cache_dir: Path | None = None, results_path: Path = DEFAULT_RESULTS,
                   echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Every cell of the suite (or of `protocols`) for `model`, one row each, reused from the store when the
    same weights were evaluated before. `step` is appended to the name (`name@step3`), so a training run's
    evaluations are told apart in tables; the rows' identity is the weights, not the name. Cells that
    failed are reported through `echo` and left out."""
    label = name if step is None else series_label(name, step)
    encoder = encoder_from_module(model, label, preprocessing)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    options = RunOptions(cache_dir=cache_dir, results_path=Path(results_path), device=device,
                         protocols=tuple(protocols))
    report = evaluate([encoder], suite, options, echo)
    return pd.DataFrame([dataclasses.asdict(row) for row in report.rows])


@dataclass
class EvaluateEvery:
    """A plain training loop's evaluation hook: `hook(model, epoch)` at the end of each epoch evaluates the
    model every `every` epochs (`evaluate_model(..., step=epoch, **options)`) and keeps each evaluation's
    rows in `history` (one DataFrame per evaluation)."""

    suite: str | Suite
    name: str
    every: int = 1
    options: dict[str, Any] = field(default_factory=dict)
    history: list[pd.DataFrame] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise UserError(f"EvaluateEvery: every must be a whole number of epochs >= 1, got {self.every!r}")
        self.suite = self.suite if isinstance(self.suite, Suite) else load_suite(self.suite)  # checked once

    def __call__(self, model: nn.Module, epoch: int) -> pd.DataFrame | None:
        if epoch % self.every:
            return None
        rows = evaluate_model(model, self.suite, name=self.name, step=epoch, **self.options)
        self.history.append(rows)
        return rows
