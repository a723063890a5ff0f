"""What machine a speed figure was measured on: CPU model, its widest SIMD level, the BLAS that torch
and numpy use, and the GPU if there is one. Every perf script prints this above its numbers."""

from __future__ import annotations

import os
import re
from pathlib import Path

from benchmark.pipeline.estimate import cpu_model  # the package's one reading of the CPU's name

SIMD_LEVELS = ("amx_tile", "avx512f", "avx2", "avx", "sse4_2", "asimd")  # widest first


def simd_levels() -> list[str]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(re.search(r"flags\s*:\s*(.+)", text).group(1).split()) if "flags" in text else set()
    return [level for level in SIMD_LEVELS if level in flags]


def blas() -> tuple[str, str]:
    """(torch's BLAS, numpy's BLAS), as each library reports its build."""
    import numpy as np
    import torch

    config = torch.__config__.show()
    torch_blas = re.search(r"BLAS_INFO=(\w+)", config)
    numpy_info = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    return (torch_blas.group(1) if torch_blas else "unknown",
            f"{numpy_info.get('name', 'unknown')} {numpy_info.get('version', '')}".strip())


def describe() -> str:
    import torch

    torch_blas, numpy_blas = blas()
    simd = simd_levels()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"Machine: {cpu_model()} ({cores} cores available, widest SIMD {simd[0] if simd else 'unknown'}; "
            f"flags {' '.join(simd)}); BLAS: torch {torch_blas}, numpy {numpy_blas}; "
            f"torch {torch.__version__}; {gpu}; OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}")


if __name__ == "__main__":
    print(describe())
