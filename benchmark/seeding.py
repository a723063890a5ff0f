"""One way to make seeded randomness without touching the caller's RNG state."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

T = TypeVar("T")


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Inside: torch's global CPU RNG seeded with `seed`; after: the caller's state restored."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def seeded_init(build: Callable[[], T], seed: int = 0) -> T:
    """Build a model under a fixed seed, so random-init baselines and new heads are reproducible."""
    with seeded(seed):
        return build()
