"""Fine-tuning step on the CPU: oneDNN's own depthwise weight gradient vs `small_map_depthwise_grad`
(benchmark/depthwise.py), side by side on the same model, batch and weights, in one process; plus how far
the two paths' gradients differ after one step (float32 rounding only).

    python perf/finetune_step.py [--model bundled:efficientnet_lite0 ...] [--size 64] [--batch 32] [--steps 10]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from perf._machine import describe  # noqa: E402
from perf._timing import best_of  # noqa: E402
from benchmark.backbones import output_width  # noqa: E402
from benchmark.commands.common import positive_int  # noqa: E402
from benchmark.depthwise import small_map_depthwise_grad  # noqa: E402
from benchmark.devices import IMAGE_LAYOUT  # noqa: E402
from benchmark.encoders import load_encoder  # noqa: E402
from benchmark.errors import UserError  # noqa: E402


def classifier(spec: str, size: int, classes: int = 47) -> nn.Module:
    backbone = load_encoder(spec).model
    return nn.Sequential(backbone, nn.Linear(output_width(backbone, size), classes)).to(memory_format=IMAGE_LAYOUT)


def step_time(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, steps: int, fast: bool) -> float:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def steps_run() -> None:
        for _ in range(steps):
            with small_map_depthwise_grad() if fast else contextlib.nullcontext():
                loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    return best_of(3, steps_run)[0] / steps


def gradient_gap(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Largest |difference| between the two paths' gradients over all parameters, relative to that
    parameter's largest gradient."""
    grads = []
    for fast in (False, True):
        model.zero_grad()
        with small_map_depthwise_grad() if fast else contextlib.nullcontext():
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return max(((a - b).abs().max() / a.abs().max().clamp_min(1e-30)).item() for a, b in zip(*grads))


def compare(spec: str, size: int, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = classifier(spec, size).train()
    images = torch.randn(batch, 3, size, size).contiguous(memory_format=IMAGE_LAYOUT)
    labels = torch.arange(batch) % 47
    gap = gradient_gap(copy.deepcopy(model), images, labels)
    native = step_time(copy.deepcopy(model), images, labels, steps, fast=False)
    fast = step_time(copy.deepcopy(model), images, labels, steps, fast=True)
    return {"model": spec, "native_s": native, "fast_s": fast, "ratio": native / fast, "gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="repeatable (default: Lite0 and Lite2)")
    parser.add_argument("--size", type=positive_int, default=64)
    parser.add_argument("--batch", type=positive_int, default=32)
    parser.add_argument("--steps", type=positive_int, default=10)
    parser.add_argument("--quick", action="store_true", help="Lite0 only, 2 steps: a smoke run")
    args = parser.parse_args()
    models = args.model or (["bundled:efficientnet_lite0"] if args.quick
                            else ["bundled:efficientnet_lite0", "bundled:efficientnet_lite2"])
    print(describe())
    print(f"One SGD step, batch {args.batch} at {args.size} px, best of 3 x {2 if args.quick else args.steps} steps")
    for spec in models:
        try:
            r = compare(spec, args.size, args.batch, 2 if args.quick else args.steps)
        except UserError as error:  # an unknown or unloadable --model
            parser.error(str(error))
        print(f"{r['model']}: oneDNN {r['native_s'] * 1000:.0f} ms, small-map path {r['fast_s'] * 1000:.0f} ms "
              f"per step ({r['ratio']:.2f}x); gradients differ by <= {r['gap']:.1e} of each parameter's largest")


if __name__ == "__main__":
    main()
