"""Timing helper shared by the perf scripts."""

from __future__ import annotations

import time
from typing import Any, Callable


def best_of(repeats: int, run: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of a few runs and its result (as timeit reports), so a first run's page faults and
    thread start-up do not count against either side."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result
