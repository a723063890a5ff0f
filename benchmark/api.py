"""The library's front door for a model in memory: evaluate it on a suite with the same planner, cache,
results store and protocols as the command line, and get its rows back as a DataFrame.

    from benchmark.api import evaluate_model
    rows = evaluate_model(model, "offline", name="my-run", step=epoch, protocols=["knn", "linear"])
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd
from torch import nn

from benchmark.config import Suite, load_suite
from benchmark.encoders.in_memory import encoder_from_module
from benchmark.pipeline.runner import RunOptions, evaluate
from benchmark.preprocessing import Preprocessing
from benchmark.results import DEFAULT_RESULTS


def evaluate_model(model: nn.Module, suite: str | Suite = "offline", *, name: str, step: int | None = None,
                   preprocessing: Preprocessing | None = None, device: str = "cpu", protocols: Sequence[str] = (),
                   cache_dir: Path | None = None, results_path: Path = DEFAULT_RESULTS,
                   echo: Callable[[str], None] = print) -> pd.DataFrame:
    """Every cell of the suite (or of `protocols`) for `model`, one row each, reused from the store when the
    same weights were evaluated before. `step` is appended to the name (`name@step3`), so a training run's
    evaluations are told apart in tables; the rows' identity is the weights, not the name. Cells that
    failed are reported through `echo` and left out."""
    label = name if step is None else f"{name}@step{step}"
    encoder = encoder_from_module(model, label, preprocessing)
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    options = RunOptions(cache_dir=cache_dir, results_path=Path(results_path), device=device,
                         protocols=tuple(protocols))
    report = evaluate([encoder], suite, options, echo)
    return pd.DataFrame([dataclasses.asdict(row) for row in report.rows])
