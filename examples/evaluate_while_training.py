"""A training loop that evaluates its model every epoch on a lite suite (README "Evaluate while training").

    python3 examples/evaluate_while_training.py [--epochs 4] [--suite offline-lite]
    python3 cli.py leaderboard --series --suite offline-lite --out results/series   # the series plot

A small CNN learns Fashion-MNIST; after each epoch `EvaluateEvery` evaluates a copy of it on the suite
(rows named `tiny-cnn@step<epoch>` in the results store) and the loop prints what each evaluation took.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.api import EvaluateEvery  # noqa: E402
from benchmark.data import DATASETS, load_split  # noqa: E402
from benchmark.preprocessing import Preprocessing  # noqa: E402


def fashion_batches(preprocessing: Preprocessing, count: int = 4000, batch: int = 128):
    """Fashion-MNIST train images as the suite sees them, in batches (images, labels)."""
    split = load_split(DATASETS.get("fashion_mnist"), "train", None, count)
    transform = preprocessing.transform()
    images = torch.stack([transform(split.image_tensor(i)) for i in range(len(split))])
    return list(zip(images.split(batch), torch.as_tensor(split.labels).split(batch)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--suite", default="offline-lite")
    args = parser.parse_args()
    torch.manual_seed(0)
    preprocessing = Preprocessing(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    batches = fashion_batches(preprocessing)

    # --- the loop (README): ten lines ---
    model = nn.Sequential(nn.Conv2d(3, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten())
    head, hook = nn.Linear(64, 10), EvaluateEvery(args.suite, name="tiny-cnn", options={
        "preprocessing": preprocessing, "echo": lambda line: None})   # rows come back; the run's report is not printed
    optimizer = torch.optim.Adam([*model.parameters(), *head.parameters()], lr=3e-3)
    for epoch in range(1, args.epochs + 1):
        for images, labels in batches:
            loss = nn.functional.cross_entropy(head(model(images)), labels)
            optimizer.zero_grad(), loss.backward(), optimizer.step()
        start = time.perf_counter()
        rows = hook(model, epoch)                       # this epoch's rows, also in the results store
        cells = ", ".join(f"{row.protocol}·{row.dataset} {row.value:.1f}" for row in rows.itertuples())
        print(f"epoch {epoch}: loss {loss.item():.3f}; evaluated in {time.perf_counter() - start:.1f} s: {cells}",
              flush=True)


if __name__ == "__main__":
    main()
