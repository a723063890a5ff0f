"""Turning a dataset split into features with one encoder: decode, preprocess, batch, forward.

Unreadable or truncated images are skipped and counted (an error past `max_bad_fraction`), and a
batch that runs out of memory is retried at half the batch size.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from PIL import UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from benchmark.data.base import ImageSplit
from benchmark.devices import IMAGE_LAYOUT, Precision, exact_float32, to_numpy
from benchmark.encoders.base import Encoder
from benchmark.errors import UserError
from benchmark.folding import folded_batchnorm
from benchmark.identity import Component
from benchmark.preprocessing import Preprocessing
from benchmark.vocab import FeatureKind

log = logging.getLogger(__name__)
EXTRACTION = Component("extraction", "3")  # bump when extraction changes the features it writes
# (2: NHWC on CPU; 3: batch norm folded into the convolutions, `benchmark.folding`)
DECODE_ERRORS = (OSError, UnidentifiedImageError, ValueError, SyntaxError)


class PreprocessedImages(Dataset):
    """Items are (index, tensor), or (index, None) when the image cannot be decoded."""

    def __init__(self, split: ImageSplit, preprocessing: Preprocessing):
        self.split = split
        self.transform = preprocessing.transform()

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None]:
        try:
            return index, self.transform(self.split.image_tensor(index))
        except DECODE_ERRORS:
            return index, None


def collate(items: list[tuple[int, torch.Tensor | None]]) -> tuple[list[int], torch.Tensor | None, list[int]]:
    good = [(i, t) for i, t in items if t is not None]
    bad = [i for i, t in items if t is None]
    batch = torch.stack([t for _, t in good]) if good else None
    return [i for i, _ in good], batch, bad


@dataclass
class Extracted:
    features: np.ndarray  # (kept, D) float32
    kept: np.ndarray  # indices of the split's images that decoded
    skipped: list[int]


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, torch.OutOfMemoryError) or (
        isinstance(error, RuntimeError) and ("out of memory" in str(error) or "can't allocate memory" in str(error)))


class HalvingEncoder:
    """Encodes batches in chunks, halving the chunk size for good after an out-of-memory error; under
    autocast at the given precision (features come back as float32 either way)."""

    def __init__(self, encoder: Encoder, chunk: int, kind: FeatureKind = FeatureKind.POOLED,
                 precision: Precision = Precision.FP32, device: str = "cpu"):
        self.encoder, self.chunk, self.precision = encoder, chunk, precision
        self.encode = encoder.encode_dense if kind == FeatureKind.DENSE else encoder.encode
        self.autocast = torch.autocast(torch.device(device).type, dtype=precision.dtype,
                                       enabled=precision.dtype is not None)

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        while True:
            try:
                with self.autocast, exact_float32(self.precision):
                    return torch.cat([self.encode(part) for part in batch.split(self.chunk)]).float()
            except (RuntimeError, torch.OutOfMemoryError) as err:
                if not is_out_of_memory(err):
                    raise
                if self.chunk == 1:
                    raise UserError(f"out of memory extracting features even one image at a time with "
                                    f"{self.encoder.label}; use a smaller input size or another device") from None
                self.chunk = max(1, self.chunk // 2)
                log.warning("out of memory during extraction; retrying at batch size %d", self.chunk)
            if torch.cuda.is_available():  # outside the except: its traceback no longer holds the batch
                torch.cuda.empty_cache()


class OnDevice:
    """Batch outputs left on the device and brought back together (up to 256 MB at a time): one wait for
    the GPU per group of batches instead of one per batch."""

    def __init__(self, limit_bytes: int = 1 << 28):
        self.parts: list[torch.Tensor] = []
        self.limit, self.size = limit_bytes, 0

    def add(self, output: torch.Tensor) -> list[np.ndarray]:
        self.parts.append(output)
        self.size += output.numel() * output.element_size()
        return self.flush() if self.size >= self.limit or output.device.type == "cpu" else []

    def flush(self) -> list[np.ndarray]:
        arrays = [to_numpy(torch.cat(self.parts))] if self.parts else []
        self.parts, self.size = [], 0
        return arrays


def extract_features(encoder: Encoder, split: ImageSplit, preprocessing: Preprocessing, *, batch_size: int = 64,
                     workers: int = 0, device: str = "cpu", desc: str = "extract", kind: FeatureKind = FeatureKind.POOLED,
                     max_bad_fraction: float = 0.01, shard: tuple[int, int] | None = None,
                     precision: Precision = Precision.FP32) -> Extracted:
    """Float32 features in the split's order (pooled (N, D) or dense (N, C, h, w)), skipping images
    that do not decode. `shard=(rank, world_size)` extracts only that rank's DistributedSampler share;
    `kept` then says which dataset positions it holds. Decoding and resizing run in `workers` processes
    (prefetching); the model and its batches are channels_last (`IMAGE_LAYOUT`)."""
    images = PreprocessedImages(split, preprocessing)
    sampler = DistributedSampler(images, num_replicas=shard[1], rank=shard[0], shuffle=False) if shard else None
    loader = DataLoader(images, batch_size=batch_size, shuffle=False, sampler=sampler, num_workers=workers,
                        pin_memory=device.startswith("cuda"), collate_fn=collate,
                        prefetch_factor=4 if workers else None)
    encoder.to(device).model.to(memory_format=IMAGE_LAYOUT)
    encode = HalvingEncoder(encoder, batch_size, kind, precision, device)
    chunks, kept, skipped, waiting = [], [], [], OnDevice()
    with folded_batchnorm(encoder.model, probe_images(preprocessing, device)):
        for indices, batch, bad in tqdm(loader, desc=desc, unit="batch", leave=False, disable=None):
            skipped += bad
            if batch is not None:
                chunks += waiting.add(encode(batch.to(device, non_blocking=True, memory_format=IMAGE_LAYOUT)))
                kept += indices
    chunks += waiting.flush()
    check_skipped(split, skipped, max_bad_fraction, total=len(sampler) if sampler else len(split))
    features = np.ascontiguousarray(np.concatenate(chunks), dtype=np.float32)  # dense maps come back NHWC-strided
    return Extracted(features, np.asarray(kept, dtype=np.int64), skipped)


def probe_images(preprocessing: Preprocessing, device: str) -> torch.Tensor:
    """Two seeded images of the encoder's input size: what `folded_batchnorm` checks its folding on."""
    size = preprocessing.input_size
    generator = torch.Generator(device="cpu").manual_seed(0)
    images = torch.randn(2, 3, size, size, generator=generator, device="cpu")
    return images.to(device, memory_format=IMAGE_LAYOUT)


def check_skipped(split: ImageSplit, skipped: list[int], max_bad_fraction: float, total: int) -> None:
    if not skipped:
        return
    names = [str(split.images[i]) for i in skipped[:5]]
    if len(skipped) > max_bad_fraction * total:
        raise UserError(f"{len(skipped)} of {total} images could not be read (first: {names}), more than "
                        f"the {max_bad_fraction:.0%} allowed; repair or remove those files")
    log.warning("skipped %d unreadable image(s) of %d (first: %s)", len(skipped), total, names)
