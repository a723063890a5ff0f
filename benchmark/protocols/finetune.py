"""Ericsson et al.'s fine-tuning: the whole encoder plus a new linear head, trained end to end.

SGD with Nesterov momentum 0.9, cosine annealing over `steps`, batch 64; cross-entropy (BCE-with-
logits for multi-label data). The grid is lr in logspace(-4, -1, 4), largest first, crossed with a
regularisation value w in {0} + logspace(-6, -3, 4), the optimiser's weight_decay being w / lr. The
best pair on validation is retrained on train+val and scored on test. Training augmentation is
RandomResizedCrop (bicubic) + horizontal flip, made in DataLoader workers (`_finetune_data`); evaluation
uses the encoder's preprocessing.

The encoder is deep-copied for every run: the user's model and weights file are never modified.
Under torchrun the training runs as DDP: each rank draws batch_size / world_size images per step
(its own random stream) and gradients are averaged, so the global batch stays batch_size.
The reference budget (5,000 steps x 20 runs) is the default; CPU suites set a shorter one, which is
recorded with the result.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import distributed
from benchmark.backbones import output_width
from benchmark.depthwise import small_map_depthwise_grad
from benchmark.devices import IMAGE_LAYOUT, to_numpy
from benchmark.metrics import correct_per_example, score
from benchmark.outputs import PerExample
from benchmark.params import CheckedParams, Constraints, Each, Interval, Options
from benchmark.protocols import PROTOCOLS
from benchmark.protocols._finetune_data import TrainingBatches, on_device, training_loader
from benchmark.protocols._search import Search, SearchResult, grid_search, one_by_one, shared_out, successive_halving
from benchmark.protocols.base import Features, ModelTask, Protocol, ProtocolResult, require_test_split
from benchmark.seeding import seeded
from benchmark.vocab import FeatureKind, TaskType


DIVERGENCE_CHECK = 25  # steps between reads of the loss (each read waits for the device)


def diverged(loss: torch.Tensor, info: distributed.DistInfo) -> bool:
    """Whether the loss is no longer finite on any rank of the run (all its ranks stop together)."""
    return not math.isfinite(float(distributed.mean_over_ranks(loss.detach()) if info.enabled else loss.detach()))


class Parallel(StrEnum):
    """How a fine-tune cell uses the ranks of a torchrun job."""

    DDP = "ddp"  # every run trained by all ranks together, each drawing batch_size / world_size images
    RUNS = "runs"  # the search's runs shared out, each trained whole on one rank; the retrain stays DDP


class Classifier(nn.Module):
    def __init__(self, backbone: nn.Module, features: int, classes: int):
        super().__init__()
        self.backbone, self.head = backbone, nn.Linear(features, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(images).flatten(1))


def image_module(model: nn.Module) -> nn.Module:
    """The part of an encoder's network that maps images to features (an image-text model's image tower)."""
    return model.image_module() if hasattr(model, "image_module") else model


@PROTOCOLS.register
class FineTune(Protocol):
    name = "finetune"
    version = "1.3"  # 1.1: augmentation drawn per (seed, rank, step) in DataLoader workers; 1.2: NHWC on CPU;
    # 1.3: on the CPU, small-map depthwise weight gradients summed in another order (benchmark/depthwise.py)
    requires = (FeatureKind.MODEL,)
    selects_on_val = True

    @dataclass(frozen=True)
    class Params(CheckedParams):
        steps: int = 5000
        batch_size: int = 64
        lrs: tuple[float, ...] = tuple(float(v) for v in np.logspace(-1, -4, 4))  # largest first
        regularisation: tuple[float, ...] = (0.0, *(float(v) for v in np.logspace(-6, -3, 4)))
        momentum: float = 0.9
        seed: int = 0
        search: Search = Search.GRID  # or halving: successive halving over the same pairs (protocols/_search.py)
        halving_rate: int = 3  # halving keeps the best 1/rate of the pairs at each rung, at rate x the steps
        parallel: Parallel = Parallel.DDP  # under torchrun: runs share the search's runs out among the ranks
        constraints: ClassVar[Constraints] = {
            "steps": Interval(int, 1), "batch_size": Interval(int, 1), "lrs": Each(Interval(float, 0, open_low=True)),
            "regularisation": Each(Interval(float, 0)), "momentum": Interval(float, 0, 1), "seed": Interval(int, 0),
            "search": Options(*Search), "halving_rate": Interval(int, 2), "parallel": Options(*Parallel)}
        added_later: ClassVar[tuple[str, ...]] = ("search", "halving_rate", "parallel")

    def evaluate(self, data: ModelTask) -> ProtocolResult:
        """The (lr, regularisation) search on train -> val (the grid, or successive halving), then the chosen
        pair trained on train+val and scored on test. With a single pair there is nothing to select, so the
        train -> val run is skipped."""
        require_test_split(data, self.name)
        pairs = [(lr, w) for lr in self.params.lrs for w in self.params.regularisation]
        search = self.search(data, pairs) if len(pairs) > 1 else None
        best_lr, best_w = pairs[search.best] if search else pairs[0]
        outputs = self.train_and_predict(data, data.trainval, data.test, best_lr, best_w)
        test_y = np.asarray(data.test.y)
        return ProtocolResult(value=score(data.metric, test_y, outputs), metric=data.metric,
                              chosen={"lr": best_lr, "regularisation": best_w},
                              details=self.search_details(pairs, search),
                              per_example=PerExample(correct_per_example(data.metric, test_y, outputs)))

    def search(self, data: ModelTask, pairs: list[tuple[float, float]]) -> SearchResult:
        val_y = np.asarray(data.val.y)
        sharing = self.params.parallel == Parallel.RUNS and distributed.current().enabled
        alone = distributed.DistInfo() if sharing else None  # a shared-out run is trained whole by one rank

        def val_score(candidate: int, steps: int) -> float:
            return score(data.metric, val_y, self.train_and_predict(data, data.train, data.val, *pairs[candidate],
                                                                    steps=steps, info=alone))

        scores_of = shared_out(val_score) if sharing else one_by_one(val_score)
        if self.params.search == Search.HALVING:
            result = successive_halving(len(pairs), self.params.steps, self.params.halving_rate, scores_of)
        else:
            result = grid_search(len(pairs), self.params.steps, scores_of)
        return dataclasses.replace(result, ranks=distributed.current().world_size if sharing else 1)

    def search_details(self, pairs: list[tuple[float, float]], search: SearchResult | None) -> dict:
        details = {"steps": self.params.steps, "batch_size": self.params.batch_size, "search": self.params.search}
        if search is None:
            return details | {"val_score": None, "grid": [[*pairs[0], None]]}
        final = search.rungs[-1].scores
        details |= {"val_score": final[search.best], "search_steps": search.total_steps(), "search_ranks": search.ranks}
        if self.params.search == Search.HALVING:
            return details | {"rungs": search.record(pairs), "halving_rate": self.params.halving_rate}
        return details | {"grid": [[*pair, final[i]] for i, pair in enumerate(pairs)]}

    def train_and_predict(self, data: ModelTask, train: Features, evaluate: Features, lr: float, regularisation: float,
                          steps: int | None = None, info: distributed.DistInfo | None = None) -> np.ndarray:
        model = self.fit(data, np.asarray(train.x), np.asarray(train.y), lr, regularisation, steps, info)
        return self.predict(data, model, np.asarray(evaluate.x))

    def fit(self, data: ModelTask, indices: np.ndarray, labels: np.ndarray, lr: float, regularisation: float,
            steps: int | None = None, info: distributed.DistInfo | None = None) -> nn.Module:
        """Train a copy of the encoder plus a new head. Every random draw (head init, batches,
        augmentations) is seeded, so a cell's score does not depend on what ran before it. `info`: the
        ranks that train it (default: all of the job's; rank 0 of 1 trains it alone)."""
        p, info = self.params, info or distributed.current()
        with seeded(p.seed):
            backbone = copy.deepcopy(image_module(data.encoder.model))
            model = Classifier(backbone, output_width(backbone, data.preprocessing.input_size), data.num_classes)
        model.to(data.device)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=p.momentum, nesterov=True,
                                    weight_decay=regularisation / lr)
        with seeded(p.seed + 1_000_003 * info.rank + 1):  # dropout and drop-path draw from torch's global RNG
            self.train_steps(data, model, optimizer, indices, torch.as_tensor(labels, device=data.device),
                             steps or p.steps, info)
        return model.eval()

    def train_steps(self, data: ModelTask, model: nn.Module, optimizer: torch.optim.Optimizer, indices: np.ndarray,
                    targets: torch.Tensor, steps: int, info: distributed.DistInfo) -> None:
        p = self.params
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        per_rank = max(1, min(p.batch_size, len(indices)) // info.world_size)
        on_gpu = data.device.startswith("cuda")
        trained = (nn.parallel.DistributedDataParallel(model, device_ids=[data.device] if on_gpu else None)
                   if info.enabled else model)
        batches = TrainingBatches(data.images, indices, steps, per_rank, data.preprocessing, p.seed, info.rank)
        model.train()
        for step, (rows, crops) in enumerate(training_loader(batches, data.workers, pin=on_gpu)):
            with small_map_depthwise_grad(data.device):  # oneDNN's slow weight gradient on 2x2..4x4 maps
                logits = trained(on_device(crops, data.preprocessing, data.device))
            batch_targets = targets[rows.to(targets.device)]
            loss = (F.binary_cross_entropy_with_logits(logits, batch_targets.float())
                    if data.task == TaskType.MULTILABEL else F.cross_entropy(logits, batch_targets))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            if (step + 1) % DIVERGENCE_CHECK == 0 and diverged(loss, info):  # every 25 steps: no wait per step
                break  # diverged at this lr: its validation score will show it

    @staticmethod
    def predict(data: ModelTask, model: nn.Module, indices: np.ndarray, batch: int = 128) -> np.ndarray:
        transform = data.preprocessing.transform()
        outputs = []
        with torch.no_grad():
            for start in range(0, len(indices), batch):
                images = torch.stack([transform(data.images.image_tensor(int(i)).to(data.device))
                                      for i in indices[start:start + batch]]).contiguous(memory_format=IMAGE_LAYOUT)
                outputs.append(to_numpy(model(images)))
        scores = np.concatenate(outputs)
        return np.nan_to_num(scores, nan=0.0, posinf=0.0, neginf=0.0)
