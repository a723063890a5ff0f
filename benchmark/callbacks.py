"""Evaluation from inside a PyTorch Lightning run (an optional dependency: `pip install "transferbench[lightning]"`).

    from benchmark.callbacks import TransferbenchCallback
    trainer = lightning.Trainer(max_epochs=100, callbacks=[
        TransferbenchCallback("ericsson2021-lite", name="my-run", every=5, module="backbone",
                              options={"preprocessing": preprocessing, "protocols": ["knn"]})])

At the end of every `every`-th training epoch, the global-zero process evaluates a copy of the
LightningModule's encoder (`module`: the attribute holding it; default the whole LightningModule) with
`benchmark.api.evaluate_model(..., step=epoch)`, so the run's checkpoints form a series that
`leaderboard --series` plots, and logs each cell as `transferbench/<protocol>/<dataset>` through the
LightningModule's logger. Training is not disturbed: the encoder is deep-copied, and the model keeps its
mode and device. For a plain training loop without Lightning, use `benchmark.api.EvaluateEvery`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from torch import nn

from benchmark.api import EvaluateEvery
from benchmark.config import Suite
from benchmark.errors import UserError

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError as missing:  # the optional dependency
    raise UserError('TransferbenchCallback needs PyTorch Lightning: pip install "transferbench[lightning]" '
                    '(or pip install lightning); in a plain loop use benchmark.api.EvaluateEvery') from missing


class TransferbenchCallback(Callback):
    """Evaluate the encoder every `every` epochs on a suite; keep each evaluation's rows in `history`."""

    def __init__(self, suite: str | Suite, name: str, every: int = 1, module: str | None = None,
                 options: dict[str, Any] | None = None, echo: Callable[[str], None] = print):
        self.hook = EvaluateEvery(suite, name, every, {"echo": echo, **(options or {})})
        self.module = module

    @property
    def history(self) -> list[pd.DataFrame]:
        return self.hook.history

    def encoder(self, pl_module: LightningModule) -> nn.Module:
        if self.module is None:
            return pl_module
        found = getattr(pl_module, self.module, None)
        if not isinstance(found, nn.Module):
            raise UserError(f"TransferbenchCallback: the LightningModule has no module `{self.module}` "
                            f"(module= names the attribute holding the encoder)")
        return found

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        rows = self.hook(self.encoder(pl_module), trainer.current_epoch + 1)
        if rows is None or rows.empty:
            return
        for row in rows.itertuples():
            pl_module.log(f"transferbench/{row.protocol}/{row.dataset}", float(row.value), rank_zero_only=True)
