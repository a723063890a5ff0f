"""The README's first command under several CPU kernel paths, as other machines would run it.

    python perf/machines.py [--paths native avx2 sse one-thread ...] [--model SPEC ...] [--protocol COLUMN ...]
                            [--keep DIR] [--quick]

Another CPU rounds floating point differently because its libraries pick other kernels: torch's ATen
(`ATEN_CPU_CAPABILITY`), MKL's GEMMs (`MKL_ENABLE_INSTRUCTIONS`), oneDNN's convolutions
(`ONEDNN_MAX_CPU_ISA`), numpy's OpenBLAS (`OPENBLAS_CORETYPE`) and numpy's own loops
(`NPY_DISABLE_CPU_FEATURES`), and the thread count splits every reduction differently. Each path below
forces one such set on this machine. The command runs once per path in its own process, with an empty
feature cache and results store, and this script prints:
- the table and summary lines that differ from the first path's (what a newcomer would see change);
- every cell whose value differs across paths, with its values and spread;
- the verdict issue 33 asks for: whether every cell that prints differently is marked `≈s` (its
  `stability: N` reruns printed differently) on every path and differs by less than its smallest s.
Values are what the tables read: a cell with stability reruns is the mean over its runs.

Each full run takes as long as the README command (about 3 minutes on 2 cores; the `sse` path longer).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmark.results import ResultsStore  # noqa: E402
from benchmark.results.report import printed_digits, rerun_mark  # noqa: E402
from benchmark.vocab import metric_spec  # noqa: E402
from perf._machine import describe  # noqa: E402

NUMPY_AVX512 = "AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
NUMPY_AVX = f"AVX AVX2 FMA3 F16C {NUMPY_AVX512}"

# name -> environment that forces a kernel path (what changes rounding between CPUs)
KERNEL_PATHS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX512},
    "sse": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
            "OPENBLAS_CORETYPE": "Nehalem", "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX},
    "one-thread": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
    "sse-one-thread": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
                       "ONEDNN_MAX_CPU_ISA": "SSE41", "OPENBLAS_CORETYPE": "Nehalem",
                       "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                       "OPENBLAS_NUM_THREADS": "1"},
    "avx2-one-thread": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                        "OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "OPENBLAS_NUM_THREADS": "1"},
}
QUICK_ARGS = ["--model", "pixels:8", "--protocol", "knn", "--protocol", "linear"]


@dataclass
class PathRun:
    name: str
    seconds: float
    printed: list[str]  # the tables and summary, as the user reads them
    values: pd.Series  # (encoder, dataset, protocol) -> value as tables read it
    marks: pd.Series  # (encoder, dataset, protocol) -> the `≈s` mark it is printed with (NaN: unmarked)
    printed_values: pd.Series  # (encoder, dataset, protocol) -> value at the printed precision


def readme_command() -> list[str]:
    """The `evaluate` arguments of the README's first command (after `cli.py`)."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if "cli.py evaluate" in line:
            return shlex.split(line.split("cli.py", 1)[1])
    raise SystemExit("README.md has no `cli.py evaluate` line")


def without_models(arguments: list[str]) -> list[str]:
    """The arguments without their `--model SPEC` pairs."""
    kept, skip = [], False
    for argument in arguments:
        if not skip and argument != "--model":
            kept.append(argument)
        skip = argument == "--model" and not skip
    return kept


def report_lines(stdout: str) -> list[str]:
    """What the command printed from its first table on: tables, skipped cells and summary (log lines
    with times, which differ on every run, come before)."""
    lines = stdout.splitlines()
    first = next((i for i, line in enumerate(lines) if line.startswith("### ")), len(lines))
    return [line for line in lines[first:] if not re.search(r"\d s(econds)? (of|wall)", line)]


def run_path(name: str, arguments: list[str], work: Path) -> PathRun:
    env = {**os.environ, **KERNEL_PATHS[name], "PYTHONPATH": str(ROOT)}
    results = work / name / "runs.sqlite"
    command = [sys.executable, str(ROOT / "cli.py"), *arguments, "--cache-dir", str(work / name / "cache"),
               "--results", str(results)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(f"{name}: exit {done.returncode}\n{done.stderr[-3000:]}")
    rows = ResultsStore(results).latest().set_index(["encoder", "dataset", "protocol"])
    digits = pd.Series([printed_digits(metric_spec(m) is None or metric_spec(m).is_score) for m in rows["metric"]],
                       index=rows.index)
    marks = pd.Series([rerun_mark(r, d) for r, d in zip(rows["stability_runs"], digits)], index=rows.index)
    printed = pd.Series([f"{v:.{d}f}" for v, d in zip(rows["value"], digits)], index=rows.index)
    return PathRun(name, seconds, report_lines(done.stdout), rows["value"], marks, printed)


def differing_lines(runs: list[PathRun]) -> list[str]:
    first = runs[0]
    out = []
    for run in runs[1:]:
        changed = [(a, b) for a, b in zip(first.printed, run.printed) if a != b]
        if len(first.printed) != len(run.printed):
            out.append(f"{run.name}: printed {len(run.printed)} lines vs {len(first.printed)}")
        out.append(f"{run.name}: {len(changed)} of {len(first.printed)} printed lines differ from {first.name}")
        out += [f"    {first.name}: {a}\n    {run.name}: {b}" for a, b in changed]
    return out


def cell_spreads(runs: list[PathRun]) -> pd.DataFrame:
    """One row per cell whose stored value differs across paths: its values and spread (max - min)."""
    table = pd.concat({run.name: run.values for run in runs}, axis=1)
    spread = table.max(axis=1) - table.min(axis=1)
    table["spread"] = spread
    return table[spread > 0].sort_values("spread", ascending=False)


def unexplained_cells(runs: list[PathRun]) -> list[str]:
    """Cells that print differently across paths without being marked `≈s` on every path, or that move
    by s or more: what the done-when of issue 33 allows none of."""
    printed = pd.concat({run.name: run.printed_values for run in runs}, axis=1)
    values = pd.concat({run.name: run.values for run in runs}, axis=1)
    marks = pd.concat({run.name: run.marks for run in runs}, axis=1)
    out = []
    for cell in printed.index[printed.nunique(axis=1) > 1]:
        moved, allowed = values.loc[cell].max() - values.loc[cell].min(), marks.loc[cell].min()
        if not moved < allowed:  # NaN (unmarked somewhere) fails too
            out.append(f"    {' · '.join(cell)}: {' / '.join(printed.loc[cell])}, moved {moved:.2f}, "
                       f"marked ≈{' / '.join(f'{m:.2f}' for m in marks.loc[cell])}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--paths", nargs="+", choices=list(KERNEL_PATHS),
                        default=["native", "avx2", "sse", "one-thread"])
    parser.add_argument("--keep", type=Path, help="keep each path's cache and store under this folder")
    parser.add_argument("--quick", action="store_true", help="pixels:8, k-NN and linear only, two paths")
    parser.add_argument("--model", action="append", help="these models instead of the README's (repeatable)")
    parser.add_argument("--protocol", action="append", help="only these suite columns (repeatable), as evaluate's")
    args = parser.parse_args()
    arguments = readme_command()
    if args.model:
        arguments = without_models(arguments) + [part for spec in args.model for part in ("--model", spec)]
    arguments += [part for column in args.protocol or [] for part in ("--protocol", column)]
    paths = args.paths
    if args.quick:
        arguments = without_models(arguments) + QUICK_ARGS
        paths = ["native", "one-thread"]
    print(describe())
    print("command: python3 cli.py " + " ".join(arguments))
    work = args.keep or Path(tempfile.mkdtemp(prefix="machines-"))
    runs = []
    for name in paths:
        runs.append(run_path(name, arguments, work))
        print(f"{name}: {runs[-1].seconds:.1f} s, {len(runs[-1].values)} cells "
              f"({' '.join(f'{k}={v}' for k, v in KERNEL_PATHS[name].items()) or 'this machine as it is'})", flush=True)
    print("\n".join(differing_lines(runs)))
    spreads = cell_spreads(runs)
    print(f"\n{len(spreads)} of {len(runs[0].values)} cells differ in their stored value across "
          f"{len(runs)} kernel paths" + (":" if len(spreads) else ""))
    if len(spreads):
        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
            print(spreads)
    unexplained = unexplained_cells(runs)
    print(f"\n{len(unexplained)} cells print differently across paths without a mark (≈s on every path) that "
          f"covers the move" + (":" if unexplained else ""))
    print("\n".join(unexplained))


if __name__ == "__main__":
    main()
