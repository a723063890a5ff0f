"""The generic pretraining loop: knows optimisers, schedules, checkpoints and data, not methods.

AdamW with linear warmup then cosine decay (per step), the same for every method so methods compare
on equal footing; AMP (bf16) on a GPU; a resumable state written atomically after every epoch; a
final self-describing checkpoint that `evaluate` loads as `checkpoint:PATH`. Every random draw
(data order, views) comes from a generator seeded by (seed, epoch), so a resumed run reaches the same
weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from benchmark.atomic import write_atomically
from benchmark.backbones import create_headless, output_width
from benchmark.data import dataset_spec, load_split, resolve_root
from benchmark.data.base import ImageSplit
from benchmark.encoders.checkpoint import read_checkpoint, save_checkpoint
from benchmark.errors import UserError
from benchmark.params import Boolean, CheckedParams, Constraints, Interval, Optional, build_params
from benchmark.preprocessing import Preprocessing
from benchmark.seeding import seeded, seeded_init
from benchmark.training import METHODS
from benchmark.training.base import Method, MethodContext
from benchmark.vocab import TaskType

log = logging.getLogger(__name__)
RANDOM_INIT = "random_init"  # the method name of a study's untrained baseline


@dataclass(frozen=True)
class PretrainConfig(CheckedParams):
    """One pretraining run. Checked on creation, method parameters included, so a typo fails before
    any data is loaded."""

    method: str
    out: Path
    dataset: str = "fashion_mnist"
    arch: str = "resnet18"
    arch_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to timm.create_model
    small_stem: bool = False  # 3x3 stride-1 first conv for 32-64 px inputs (ResNets)
    input_size: int = 32
    epochs: int = 10
    steps_per_epoch: int | None = None  # default: one pass over the data
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.05
    seed: int = 0
    method_params: dict[str, Any] = field(default_factory=dict)
    train_subset: int | None = None
    data_root: Path | None = None
    device: str = "cpu"
    constraints: ClassVar[Constraints] = {
        "input_size": Interval(int, 8), "epochs": Interval(int, 1), "steps_per_epoch": Optional(Interval(int, 1)),
        "batch_size": Interval(int, 2), "lr": Interval(float, 0, open_low=True), "weight_decay": Interval(float, 0),
        "warmup_fraction": Interval(float, 0, 1), "seed": Interval(int, 0), "train_subset": Optional(Interval(int, 1)),
        "small_stem": Boolean()}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method != RANDOM_INIT:  # the untrained baseline of a study has no method
            build_params(METHODS.get(self.method).Params, self.method_params, f"method {self.method}")

    def as_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    def identity(self) -> dict[str, Any]:
        """What determines the trained weights (not where they are written or on which device)."""
        return {k: v for k, v in self.as_dict().items() if k not in ("out", "device", "data_root")}


@dataclass
class TrainingImages:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    class_names: tuple[str, ...]
    description: dict[str, Any]


def pretrain(config: PretrainConfig, echo: Callable[[str], None] = print) -> Path:
    """Train (or resume, or find already trained) and return the checkpoint path."""
    out = Path(config.out)
    if out.exists():
        if read_checkpoint(out)["metadata"].get("config_identity") == config.identity():
            echo(f"{config.method}: {out} already trained with this configuration")
            return out
        raise UserError(f"{out} exists and was trained with another configuration; pass another --out or delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    data = load_training_images(config)
    method = build_method(config, data)
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay)
    steps = config.steps_per_epoch or max(1, len(data.images) // config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps * config.epochs,
                                                                          config.warmup_fraction))
    state_path = out.with_name(out.name + ".state")
    start, curve = resume(state_path, method, optimizer, schedule, config)
    with deterministic():
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            curve.append(run_epoch(method, optimizer, schedule, data, config, epoch, steps))
            save_state(state_path, method, optimizer, schedule, epoch + 1, curve, config)
            echo(f"{config.method} epoch {epoch + 1}/{config.epochs}: loss {curve[-1]:.4f} "
                 f"({time.perf_counter() - began:.1f}s)")
    write_checkpoint(out, method, config, data, curve, steps)
    state_path.unlink(missing_ok=True)
    return out


def save_untrained(config: PretrainConfig) -> Path:
    """The same architecture with its seeded initial weights: the random-init baseline of a study."""
    out = Path(config.out)
    if not out.exists():
        size = config.input_size
        mean, std = channel_statistics(load_training_images(config).images)
        preprocessing = Preprocessing(input_size=size, resize_size=size, interpolation="bilinear", mean=mean, std=std)
        save_checkpoint(out, arch=config.arch, state_dict=build_backbone(config).state_dict(),
                        preprocessing=preprocessing, arch_kwargs={"small_stem": config.small_stem, **config.arch_kwargs},
                        method=RANDOM_INIT, random_init=True, config=config.as_dict(),
                        config_identity=config.identity())
    return out


def load_training_images(config: PretrainConfig) -> TrainingImages:
    spec = dataset_spec(config.dataset)
    root = resolve_root(spec, None, config.data_root)
    split = load_split(spec, "train", root, config.train_subset)
    if spec.task != TaskType.MULTICLASS:
        raise UserError(f"pretraining reads single-label images; {config.dataset!r} is {spec.task}")
    images = as_uint8_tensor(split, config.input_size)
    description = {"dataset": config.dataset, "version": spec.version, "split": "train", "images": len(split),
                   "train_subset": config.train_subset, "root": str(root) if root else None,
                   "image_shape": list(images.shape[1:])}
    return TrainingImages(images, torch.as_tensor(split.labels, dtype=torch.long), spec.names(), description)  # device: the training set stays on the CPU


def as_uint8_tensor(split: ImageSplit, size: int) -> torch.Tensor:
    """All images in memory as (N, C, H, W) uint8; file-based datasets are resized to size x size."""
    if isinstance(split.images, np.ndarray) and split.images.ndim in (3, 4):
        array = torch.from_numpy(np.array(split.images))  # a writable copy
        return array[:, None] if array.ndim == 3 else array.permute(0, 3, 1, 2).contiguous()
    from torchvision.transforms.v2.functional import resize

    return torch.stack([resize(split.image_tensor(i), [size, size], antialias=True) for i in range(len(split))])


def build_backbone(config: PretrainConfig) -> nn.Module:
    return seeded_init(lambda: create_headless(config.arch, small_stem=config.small_stem, **config.arch_kwargs),
                       config.seed)


def build_method(config: PretrainConfig, data: TrainingImages) -> Method:
    backbone = build_backbone(config)
    width = output_width(backbone, config.input_size)
    mean, std = channel_statistics(data.images)
    context = MethodContext(width, int(data.labels.max()) + 1, config.input_size, mean, std, data.class_names)
    with seeded(config.seed + 1):
        method = METHODS.get(config.method)(backbone, context, **config.method_params)
    return method.to(config.device).train()


def channel_statistics(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std in [0, 1] (grey images give the same value for all 3 channels)."""
    sample = images[:: max(1, len(images) // 5000)].float() / 255
    mean, std = sample.mean((0, 2, 3)), sample.std((0, 2, 3))
    if len(mean) == 1:
        mean, std = mean.repeat(3), std.repeat(3)
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def warmup_cosine(total_steps: int, warmup_fraction: float) -> Callable[[int], float]:
    warmup = max(1, int(total_steps * warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    return factor


def batches(data: TrainingImages, generator: torch.Generator, steps: int, batch_size: int
            ) -> Iterator[torch.Tensor]:
    """Index batches from fresh permutations of the data (an epoch may be shorter than one pass)."""
    order = torch.randperm(len(data.images), generator=generator)
    for step in range(steps):
        start = (step * batch_size) % len(order)
        if start + batch_size > len(order):
            order = torch.randperm(len(data.images), generator=generator)
            start = 0
        yield order[start:start + batch_size]


def run_epoch(method: Method, optimizer: torch.optim.Optimizer, schedule: Any, data: TrainingImages,
              config: PretrainConfig, epoch: int, steps: int) -> float:
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    autocast_on = "cuda" if config.device.startswith("cuda") else None
    losses = []
    progress = tqdm(batches(data, generator, steps, config.batch_size), total=steps, leave=False, disable=None,
                    desc=f"{config.method} epoch {epoch + 1}")
    for step, index in enumerate(progress):
        images = data.images[index].float().div_(255).expand(-1, 3, -1, -1)
        views = [v.to(config.device, non_blocking=True) for v in method.views(images, generator)]
        with backbone_autocast(method, autocast_on):
            loss = method.loss(views, data.labels[index].to(config.device))
        if not torch.isfinite(loss):
            raise UserError(f"{config.method}: the loss became {loss.item()} at epoch {epoch + 1} step {step + 1}; "
                            f"lower --lr (training resumes from the last finished epoch)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        method.after_step((epoch * steps + step + 1) / (config.epochs * steps))
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.4f}")
    return float(np.mean(losses))


@contextmanager
def backbone_autocast(method: Method, device_type: str | None) -> Iterator[None]:
    """bf16 autocast for the backbone's forward alone (on a GPU), its output handed on as float32: heads,
    similarities and losses stay in float32 (in bf16, LiT's logits near 100 move in steps of 0.5, SimCLR's
    near 5 in steps of 0.03). None: no autocast."""
    if device_type is None:
        yield
        return
    backbone, plain = method.backbone, method.backbone.forward

    def forward(*args: Any, **kwargs: Any) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16):
            return plain(*args, **kwargs).float()

    backbone.forward = forward
    try:
        yield
    finally:
        del backbone.forward


@contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic kernels, so a resumed run gives the same weights; cuBLAS needs a fixed workspace for
    that (set before its first use: training is the process's first GPU work when it matters)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def save_state(path: Path, method: Method, optimizer: torch.optim.Optimizer, schedule: Any, epoch: int,
               curve: list[float], config: PretrainConfig) -> None:
    """The resumable state, written to a temp file and renamed (a crash leaves the previous one)."""
    state = {"method": method.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "epoch": epoch, "curve": curve, "config_identity": config.identity()}
    write_atomically(path, lambda tmp: torch.save(state, tmp))


def resume(path: Path, method: Method, optimizer: torch.optim.Optimizer, schedule: Any, config: PretrainConfig
           ) -> tuple[int, list[float]]:
    """(first epoch to run, loss curve so far): from the saved state when one matches this config."""
    if not path.exists():
        return 0, []
    state = torch.load(path, map_location=config.device, weights_only=True)
    if state["config_identity"] != config.identity():
        raise UserError(f"{path} holds an interrupted run with another configuration; delete it or use another --out")
    method.load_state_dict(state["method"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    log.warning("resuming %s from %s after epoch %d", config.method, path, state["epoch"])
    return state["epoch"], list(state["curve"])


def write_checkpoint(out: Path, method: Method, config: PretrainConfig, data: TrainingImages, curve: list[float],
                     steps: int) -> None:
    size = config.input_size
    preprocessing = Preprocessing(input_size=size, resize_size=size, interpolation="bilinear",
                                  mean=method.context.mean, std=method.context.std)
    save_checkpoint(out, arch=config.arch, state_dict=method.backbone.state_dict(), preprocessing=preprocessing,
                    arch_kwargs={"small_stem": config.small_stem, **config.arch_kwargs}, head=method.export(),
                    method=config.method, config=config.as_dict(), config_identity=config.identity(),
                    data=data.description, loss_curve=curve, steps_per_epoch=steps)
