"""Batched view augmentations for self-supervised training.

They work on a whole batch at once (N, C, H, W floats in [0, 1]), every random draw coming from an
explicit generator, so a run resumed from a checkpoint draws exactly the views it would have drawn.
Per-image torchvision transforms would cost more CPU time than the small backbones they feed.
`ViewSpec` mirrors the SimCLR/BYOL pipeline: random resized crop, flip, colour jitter (brightness,
contrast, saturation; hue is omitted), grayscale, Gaussian blur, solarisation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class ViewSpec:
    size: int
    scale: tuple[float, float] = (0.2, 1.0)
    flip: bool = True
    jitter: float = 0.0  # probability of colour jitter with strength 0.4 (SimCLR: 0.8)
    grayscale: float = 0.0  # probability (SimCLR: 0.2)
    blur: float = 0.0  # probability of a Gaussian blur, sigma in [0.1, 2] (SimCLR: 0.5)
    solarize: float = 0.0  # probability (BYOL's second view: 0.2)


def simclr_view(size: int, blur: float = 0.5, solarize: float = 0.0) -> ViewSpec:
    return ViewSpec(size, jitter=0.8, grayscale=0.2, blur=blur, solarize=solarize)


def make_view(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """One augmented view of every image; still in [0, 1] (normalise afterwards)."""
    view = random_resized_crop(images, spec.size, spec.scale, generator)
    if spec.flip:
        view = torch.where(chance(len(view), 0.5, generator), view.flip(-1), view)
    if spec.jitter:
        view = torch.where(chance(len(view), spec.jitter, generator), colour_jitter(view, 0.4, generator), view)
    if spec.grayscale:
        view = torch.where(chance(len(view), spec.grayscale, generator), grayscale(view), view)
    if spec.blur:
        view = torch.where(chance(len(view), spec.blur, generator), gaussian_blur(view, generator), view)
    if spec.solarize:
        view = torch.where(chance(len(view), spec.solarize, generator), torch.where(view >= 0.5, 1 - view, view), view)
    return view


def chance(n: int, p: float, generator: torch.Generator) -> torch.Tensor:
    """A (n, 1, 1, 1) mask that is True with probability p per image."""
    return (torch.rand(n, generator=generator) < p).view(n, 1, 1, 1)


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def random_resized_crop(images: torch.Tensor, size: int, scale: tuple[float, float], generator: torch.Generator,
                        ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> torch.Tensor:
    """Crop a random box of `scale` of the area and aspect `ratio` from each image, resized to `size`
    (bilinear, via roi_align: one batched op instead of N crops)."""
    n, _, height, width = images.shape
    area = uniform(n, *scale, generator) * height * width
    aspect = torch.exp(uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator))
    crop_w = torch.sqrt(area * aspect).clamp(max=width)
    crop_h = torch.sqrt(area / aspect).clamp(max=height)
    x0 = torch.rand(n, generator=generator) * (width - crop_w)
    y0 = torch.rand(n, generator=generator) * (height - crop_h)
    boxes = torch.stack([torch.arange(n, dtype=torch.float32), x0, y0, x0 + crop_w, y0 + crop_h], dim=1)  # device: views are made on the CPU
    return roi_align(images, boxes.to(images.dtype), output_size=size, sampling_ratio=2, aligned=True)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    weights = torch.tensor(LUMA, dtype=images.dtype).view(1, 3, 1, 1)  # device: views are made on the CPU
    return (images * weights).sum(1, keepdim=True).expand_as(images)


def colour_jitter(images: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation, each scaled by a factor in [1 - s, 1 + s] per image."""
    n = len(images)
    factor = lambda: uniform(n, 1 - strength, 1 + strength, generator).view(n, 1, 1, 1)  # noqa: E731
    images = (images * factor()).clamp(0, 1)
    mean = grayscale(images).mean((1, 2, 3), keepdim=True)
    images = ((images - mean) * factor() + mean).clamp(0, 1)
    grey = grayscale(images)
    return ((images - grey) * factor() + grey).clamp(0, 1)


def gaussian_blur(images: torch.Tensor, generator: torch.Generator, sigma: tuple[float, float] = (0.1, 2.0)
                  ) -> torch.Tensor:
    """A separable Gaussian blur with a random sigma per image (kernel about 10% of the image side)."""
    n, channels, height, _ = images.shape
    radius = max(1, int(0.1 * height) // 2)
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)  # device: views are made on the CPU
    sigmas = uniform(n, *sigma, generator).to(images.dtype)
    kernel = torch.exp(-offsets[None] ** 2 / (2 * sigmas[:, None] ** 2))
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(channels, 0)  # (n * C, k)
    flat = images.reshape(1, n * channels, *images.shape[2:])
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=n * channels)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=n * channels)
    return flat.reshape_as(images)


def normalize(images: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    return (images - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)  # device: views are made on the CPU


def multi_crop(size: int, local_crops: int) -> list[ViewSpec]:
    """SwAV / DINO multi-crop: two global crops and `local_crops` small ones, with colour distortion."""
    colour = dict(jitter=0.8, grayscale=0.2, blur=0.5)
    return ([ViewSpec(size, scale=(0.14, 1.0), **colour)] * 2
            + [ViewSpec(max(8, size // 2), scale=(0.05, 0.14), **colour)] * local_crops)


def encode_crops(network: nn.Module, views: list[torch.Tensor]) -> list[torch.Tensor]:
    """One forward per crop size (global crops together, local crops together), outputs per view."""
    outputs, start = [], 0
    while start < len(views):
        end = start
        while end < len(views) and views[end].shape == views[start].shape:
            end += 1
        outputs += network(torch.cat(views[start:end])).chunk(end - start)
        start = end
    return outputs
