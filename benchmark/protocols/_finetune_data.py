"""Fine-tuning's training batches, made where they do not hold up the device: DataLoader workers decode,
randomly resize-crop and flip each image as uint8 and stack a step's batch; the main process copies the
batch once (pinned, without blocking, on a GPU) and scales and normalises it there.

Every random draw comes from generators seeded by (seed, rank, step), never the global RNG, so a batch is
the same whatever the number of workers and whatever ran before. The crop follows torchvision's
RandomResizedCrop (scale 0.08-1, ratio 3/4-4/3, ten tries, then the centre crop) and the flip its
RandomHorizontalFlip; torchvision draws them from the global RNG, which workers cannot share.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from benchmark.devices import IMAGE_LAYOUT
from benchmark.preprocessing import INTERPOLATIONS, Preprocessing, to_three_channels

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def crop_box(height: int, width: int, generator: torch.Generator) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a random resized crop, as torchvision's RandomResizedCrop.get_params draws it."""
    area, log_ratio = height * width, (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        scale, log_aspect = torch.rand(2, generator=generator, dtype=torch.float64).tolist()
        target = area * (SCALE[0] + scale * (SCALE[1] - SCALE[0]))
        aspect = math.exp(log_ratio[0] + log_aspect * (log_ratio[1] - log_ratio[0]))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator))
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator))
            return top, left, h, w
    ratio = width / height  # no try fitted: the centre crop at the nearest allowed aspect ratio
    w, h = (width, int(round(width / RATIO[0]))) if ratio < RATIO[0] else (
        (int(round(height * RATIO[1])), height) if ratio > RATIO[1] else (width, height))
    return (height - h) // 2, (width - w) // 2, h, w


def augmented(image: torch.Tensor, preprocessing: Preprocessing, generator: torch.Generator) -> torch.Tensor:
    """A uint8 (3, S, S) random resized crop of a uint8 CHW image, flipped with probability 1/2."""
    image = to_three_channels(image)
    top, left, h, w = crop_box(image.shape[1], image.shape[2], generator)
    size = [preprocessing.input_size] * 2
    crop = TF.resized_crop(image, top, left, h, w, size, interpolation=INTERPOLATIONS[preprocessing.interpolation],
                           antialias=True)
    return TF.horizontal_flip(crop) if float(torch.rand(1, generator=generator)) < 0.5 else crop


class TrainingBatches(Dataset):
    """Item `step`: that step's pool positions and its augmented uint8 batch (N, 3, S, S)."""

    def __init__(self, images, indices: np.ndarray, steps: int, per_rank: int, preprocessing: Preprocessing,
                 seed: int, rank: int = 0, batches: list[torch.Tensor] | None = None):
        self.images, self.indices, self.preprocessing = images, indices, preprocessing
        self.seed = seed + 1_000_003 * rank
        draws = torch.Generator().manual_seed(self.seed)
        self.batches = batches if batches is not None else torch.randint(len(indices), (steps, per_rank),
                                                                         generator=draws)

    @classmethod
    def one_epoch(cls, images, indices: np.ndarray, batch_size: int, preprocessing: Preprocessing, seed: int,
                  epoch: int, max_steps: int | None = None) -> TrainingBatches:
        """Every position once, in an order drawn from (seed, epoch), in batches of `batch_size` (the last one
        smaller); at most `max_steps` of them. Its augmentations are drawn from (seed, epoch) too."""
        order = torch.from_numpy(np.random.default_rng([seed, epoch]).permutation(len(indices)))
        batches = list(order.split(batch_size))[:max_steps]
        return cls(images, indices, len(batches), batch_size, preprocessing, seed * 10_007 + epoch, batches=batches)

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + step + 1)
        rows = self.batches[step]
        crops = [augmented(self.images.image_tensor(int(self.indices[i])), self.preprocessing, generator)
                 for i in rows]
        return rows, torch.stack(crops)


def training_loader(batches: TrainingBatches, workers: int, pin: bool) -> DataLoader:
    """Steps in order, `workers` processes ahead (four steps each); batches pinned for the device copy."""
    return DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers, pin_memory=pin,
                      prefetch_factor=4 if workers else None)


def on_device(crops: torch.Tensor, preprocessing: Preprocessing, device: str) -> torch.Tensor:
    """A uint8 batch as the model takes it: one copy, then scaled to [0, 1] and normalised on the device
    (channels_last, `IMAGE_LAYOUT`)."""
    on_gpu = device.startswith("cuda")
    images = crops.to(device, non_blocking=on_gpu).float().div_(255)
    mean = torch.tensor(preprocessing.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(preprocessing.std, device=device).view(1, 3, 1, 1)
    images = images.sub_(mean).div_(std)
    return images.contiguous(memory_format=IMAGE_LAYOUT)
