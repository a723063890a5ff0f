"""torch.distributed support: which rank this process is, and the few collectives the runner needs.

Under `torchrun` every rank extracts its share of a split (a DistributedSampler over the dataset,
in order) and writes its own cache shard; the cache reads the shards back as one array in the
dataset's order, so no features travel between ranks. Fine-tuning runs under DDP; the other
protocols are cheap next to extraction and run on rank 0, which alone writes results.
Works with gloo on CPU and nccl on GPU.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current() -> DistInfo:
    """This process's place in the process group (rank 0 of 1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size())
    return DistInfo()


def init_from_env(device: str = "cpu") -> DistInfo:
    """Join the process group that `torchrun` describes in the environment; a no-op otherwise."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return DistInfo()
    if not dist.is_initialized():
        if device.startswith("cuda"):
            torch.cuda.set_device(rank_device(device))
        # rank 0 runs the feature protocols while the others wait at the next collective: NCCL's default
        # 10-minute timeout would end any dataset whose protocols take longer (TRANSFERBENCH_DIST_TIMEOUT_MIN)
        timeout = datetime.timedelta(minutes=float(os.environ.get("TRANSFERBENCH_DIST_TIMEOUT_MIN", 24 * 60)))
        dist.init_process_group(backend_for(device), timeout=timeout)
    return current()


def backend_for(device: str) -> str:
    """NCCL when every rank of the node has a GPU of its own; gloo on the CPU, and when ranks share a GPU
    (NCCL refuses two ranks on one device: a one-GPU machine still runs a 2-process check)."""
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return "nccl" if device.startswith("cuda") and ranks_here <= torch.cuda.device_count() else "gloo"


def rank_device(device: str) -> str:
    """Plain "cuda" under torchrun means this rank's own GPU, cuda:LOCAL_RANK (ranks share GPUs round-robin
    when there are more ranks than GPUs)."""
    local_rank = os.environ.get("LOCAL_RANK")
    if device != "cuda" or local_rank is None:
        return device
    return f"cuda:{int(local_rank) % max(1, torch.cuda.device_count())}"


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def failures_on_any_rank(failure: str | None) -> list[str]:
    """Every rank's failure message (None where it succeeded), gathered on every rank: a collective that
    all ranks reach whether or not their own work raised, so one failing rank never leaves the others
    waiting at a barrier it skipped."""
    if not current().enabled:
        return [failure] if failure else []
    gathered: list[Any] = [None] * current().world_size
    dist.all_gather_object(gathered, failure)
    return [f for f in gathered if f]


def broadcast_from_main(value: T) -> T:
    """Rank 0's `value` on every rank (picklable values), so all ranks take the same decisions."""
    if not current().enabled:
        return value
    box: list[Any] = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of a tensor across ranks (itself when not distributed)."""
    if not current().enabled:
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / current().world_size


def gather_dicts(mine: dict[Any, Any]) -> dict[Any, Any]:
    """Every rank's dict merged, on every rank (picklable keys and values)."""
    if not current().enabled:
        return dict(mine)
    gathered: list[Any] = [None] * current().world_size
    dist.all_gather_object(gathered, mine)
    return {key: value for part in gathered for key, value in part.items()}
