"""The run's one device: checked once, asked how much memory is free, and the way results come back
(always as CPU numpy arrays, so nothing downstream ever holds a device tensor)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum

from pathlib import Path

import numpy as np
import torch

from benchmark.errors import UserError

MEMORY_HEADROOM = 0.8  # use at most this fraction of a GPU's free memory for resident features
# Image batches and conv weights are channels_last (NHWC) on every device: cuDNN's and oneDNN's fast
# convolutions both take it. On 2 Xeon cores, EfficientNet-Lite0 at 64 px: forward 1.4x, training step 1.7x.
IMAGE_LAYOUT = torch.channels_last


class Precision(StrEnum):
    """The arithmetic of feature extraction (part of the cache key and of every row)."""

    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype; None for plain float32."""
        return {Precision.FP32: None, Precision.BF16: torch.bfloat16, Precision.FP16: torch.float16}[self]


def check_device(device: str) -> torch.device:
    """The device, or one message naming the fix when this machine does not have it."""
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device {device!r} is not a device; use cpu, cuda or cuda:N") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} was asked for but this machine has no CUDA GPU that torch can use; "
                        f"run with --device cpu or install a CUDA build of torch")
    if resolved.type == "cuda" and (resolved.index or 0) >= torch.cuda.device_count():
        raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s)")
    return resolved


@contextmanager
def exact_float32(precision: Precision) -> Iterator[None]:
    """Under `--precision fp32`, IEEE float32 arithmetic on a GPU as on the CPU: cuDNN convolutions default to
    TF32 (10-bit mantissa), about 1e-3 from float32, which the cache key would not show. Other precisions
    are autocast and named in the key as they are."""
    if precision is not Precision.FP32:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def fits(nbytes: int, device: str | torch.device) -> bool:
    """Whether `nbytes` can stay resident on the device (always true on the CPU)."""
    device = torch.device(device)
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # torch's, reusable
    return nbytes <= MEMORY_HEADROOM * (free + cached)


def host_available_bytes() -> int:
    """Memory the kernel says a new allocation can get without swapping (MemAvailable), or, where
    /proc/meminfo is missing, no limit."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """A result back on the CPU as a numpy array (the only form protocols hand back)."""
    return tensor.detach().cpu().numpy()
