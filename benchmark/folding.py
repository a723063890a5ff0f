"""Batch norm folded into the convolution before it, for extraction only.

In eval mode a batch norm is a fixed per-channel scale and shift, so a convolution followed by one equals a
single convolution with scaled weights and a bias. Folded, a CPU forward pass skips one full read and write
of every feature map: EfficientNet-Lite0 at 64 px, batch 64, ran 771 instead of 392 img/s on an AMD EPYC
with AVX2 (`perf/extraction.py`, side by side). The features move by float32 rounding only.

`folded_batchnorm(model, probe)` folds in place for the duration of a `with` block and puts the original
modules back afterwards (fine-tuning trains the same model, with its batch norms). A pair is folded only
when one probe forward pass shows the batch norm reading exactly the convolution's output tensor, and the
folded model is kept only if it gives the probe the unfolded model's output (to `AGREEMENT`, both in IEEE
float32, also on a GPU whose convolutions would default to TF32); otherwise the model runs as it is.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from timm.layers import BatchNormAct2d
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from benchmark.devices import Precision, exact_float32

log = logging.getLogger(__name__)
AGREEMENT = 1e-3  # folded and unfolded probe outputs may differ by this fraction of the output's largest value


@dataclass(frozen=True)
class Swap:
    """One module of the model replaced in its parent while folded."""

    parent: nn.Module
    name: str
    original: nn.Module
    replacement: nn.Module

    def apply(self) -> None:
        setattr(self.parent, self.name, self.replacement)

    def undo(self) -> None:
        setattr(self.parent, self.name, self.original)


def after_folding(norm: nn.Module) -> nn.Module | None:
    """What is left of a batch norm once its scale and shift are in the convolution: its activation for
    timm's BatchNormAct2d, nothing for a plain BatchNorm2d; None for anything else (not folded)."""
    if isinstance(norm, BatchNormAct2d):
        return nn.Sequential(norm.drop, norm.act)
    return nn.Identity() if type(norm) is nn.BatchNorm2d else None


def foldable(norm: nn.Module) -> bool:
    return (not norm.training and norm.running_mean is not None and norm.running_var is not None
            and after_folding(norm) is not None)


def adjacent_pairs(model: nn.Module, probe: torch.Tensor) -> list[tuple[str, str]]:
    """(convolution, batch norm) module names where, in one forward pass of `probe`, the norm's input is the
    convolution's output tensor itself, and each of the two ran once (a shared module is not folded)."""
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # holding each output: no id is reused in the pass
    pairs: list[tuple[str, str]] = []
    calls: Counter[str] = Counter()

    def record_output(name: str):
        def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
            calls[name] += 1
            produced[id(output)] = name, output
        return hook

    def record_input(name: str):
        def hook(module: nn.Module, args: tuple) -> None:  # returns None: the input stays as it is
            calls[name] += 1
            conv, output = produced.get(id(args[0]), ("", None))
            pairs.append((conv if output is args[0] else "", name))
        return hook

    hooks = [module.register_forward_hook(record_output(name)) for name, module in model.named_modules()
             if isinstance(module, nn.Conv2d)]
    hooks += [module.register_forward_pre_hook(record_input(name)) for name, module in model.named_modules()
              if isinstance(module, nn.BatchNorm2d) and foldable(module)]
    try:
        with torch.inference_mode():
            model(probe)
    finally:
        for hook in hooks:
            hook.remove()
    readers = Counter(conv for conv, _ in pairs)
    return [(conv, norm) for conv, norm in pairs
            if conv and calls[conv] == calls[norm] == readers[conv] == 1]


def swaps_for(model: nn.Module, pairs: list[tuple[str, str]]) -> list[Swap]:
    swaps = []
    for conv_name, norm_name in pairs:
        conv, norm = model.get_submodule(conv_name), model.get_submodule(norm_name)
        swaps.append(Swap(*parent_and_name(model, conv_name), conv, fuse_conv_bn_eval(conv, norm)))
        swaps.append(Swap(*parent_and_name(model, norm_name), norm, after_folding(norm)))
    return swaps


def parent_and_name(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, child = name.rpartition(".")
    return model.get_submodule(parent), child


def agrees(expected: object, got: object) -> bool:
    if not isinstance(expected, torch.Tensor) or not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return False
    scale = expected.abs().max().item()
    return expected.numel() > 0 and (got - expected).abs().max().item() <= AGREEMENT * max(scale, 1e-30)


@contextmanager
def folded_batchnorm(model: nn.Module, probe: torch.Tensor) -> Iterator[int]:
    """Inside the block `model` runs with its batch norms folded (see the module's docstring); yields how
    many were folded (0: the model runs unchanged; always so in training mode, where a batch norm normalises
    with the batch's own statistics)."""
    swaps = [] if model.training else swaps_for(model, adjacent_pairs(model, probe))
    with torch.inference_mode(), exact_float32(Precision.FP32):
        expected = model(probe) if swaps else None
        for swap in swaps:
            swap.apply()
        if swaps and not agrees(expected, model(probe)):
            log.info("batch norm left unfolded: the folded model's output differs from the model's")
            for swap in reversed(swaps):
                swap.undo()
            swaps = []
    try:
        yield len(swaps) // 2
    finally:
        for swap in reversed(swaps):
            swap.undo()
