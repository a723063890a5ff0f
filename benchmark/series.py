"""Checkpoint series: a training run's checkpoints evaluated as one series, `<series>@step<N>`.

`evaluate --series 'timm:resnet18@runs/exp1/ckpt_*.pt'` (or `checkpoint:runs/exp1/`) expands the spec's
file part, a glob or a directory, into one encoder per checkpoint, in step order. Each is loaded only when
its turn comes, and a checkpoint evaluated before is reused from the store: the cell keys hold the weights'
digest, not the name. The step is the last number in the file name, else the checkpoint's own `step`,
`global_step` or `epoch` entry (top level, or in the metadata of `save_checkpoint`). The same `name@stepN` labels come from `benchmark.api.evaluate_model(...,
step=N)`, so `leaderboard --series` reads both.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, replace
from pathlib import Path

from benchmark.encoders import Encoder, ModelSpec, load_encoder
from benchmark.errors import UserError
from benchmark.results.series import series_label

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".safetensors", ".ckpt", ".bin")
STEP_IN_NAME = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits
STEP_KEYS = ("step", "global_step", "epoch")


@dataclass(frozen=True)
class SeriesMember:
    """One checkpoint of a series, loaded when the run reaches it."""

    spec: str
    label: str
    step: int

    def load(self) -> Encoder:
        encoder = load_encoder(self.spec)
        encoder.name = self.label
        return encoder


def checkpoint_files(pattern: str) -> list[Path]:
    path = Path(pattern).expanduser()
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.suffix in CHECKPOINT_SUFFIXES]
    else:
        files = [Path(p) for p in sorted(glob.glob(str(path)))]
    if not files:
        raise UserError(f"--series: no checkpoint matches {pattern!r} (a glob such as runs/exp1/ckpt_*.pt, or a "
                        f"folder of {', '.join(CHECKPOINT_SUFFIXES)} files)")
    return files


def step_of(path: Path) -> int:
    found = STEP_IN_NAME.search(path.stem)
    if found:
        return int(found.group(1))
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - any unreadable file gets the same advice
        saved = None
    entries = saved if isinstance(saved, dict) else {}
    entries = {**entries.get("metadata", {}), **entries} if isinstance(entries.get("metadata"), dict) else entries
    step = next((entries[k] for k in STEP_KEYS if isinstance(entries.get(k), int)), None)
    if step is None:
        raise UserError(f"--series: cannot tell the step of {path}: put it in the file name (ckpt_1000.pt) or save "
                        f"it in the checkpoint as one of {', '.join(STEP_KEYS)}")
    return step


def expand(spec_text: str, name: str | None = None) -> list[SeriesMember]:
    """The series' checkpoints in step order; `name` defaults to the checkpoints' folder name."""
    spec = ModelSpec.parse(spec_text)
    pattern = spec.name if spec.source == "checkpoint" else str(spec.weights or "")
    if not pattern:
        raise UserError(f"--series {spec_text!r}: give the checkpoints as SOURCE:ARCH@GLOB or checkpoint:GLOB")
    files = checkpoint_files(pattern)
    series = name or files[0].resolve().parent.name
    members = []
    for path in files:
        one = (replace(spec, name=str(path), weights=path) if spec.source == "checkpoint"
               else replace(spec, weights=path))
        members.append(SeriesMember(str(one), series_label(series, step_of(path)), step_of(path)))
    steps = [m.step for m in members]
    if len(set(steps)) < len(steps):
        raise UserError(f"--series: two checkpoints share a step ({sorted(steps)}); name each file by its step")
    return sorted(members, key=lambda m: m.step)
