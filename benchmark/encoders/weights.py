"""Loading weights files safely and fitting them to an architecture, with a clear report.

Public SSL releases wrap ResNet-50 state dicts in many ways (`module.`, `encoder_q.`, `backbone.`,
`model.` prefixes; nested under "state_dict"; fc heads present or absent). We unwrap, strip the
prefixes, ignore classifier heads, and list what did not fit.
"""

from __future__ import annotations

import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.errors import MissingDataError, UserError

WRAPPER_KEYS = ("state_dict", "model", "module", "network", "backbone", "teacher", "encoder", "net")
STRIP_PREFIXES = ("module.", "encoder_q.", "backbone.", "model.", "encoder.", "net.")
HEAD_PREFIXES = ("fc.", "classifier.", "head.", "heads.", "last_linear.")
SHOWN_KEYS = 8


def safe_load(path: str | Path) -> Any:
    """torch.load with weights_only=True: tensors and plain containers only, no code execution."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingDataError(f"weights file {path} does not exist; check the path after '@' in the model spec")
    if path.suffix == ".safetensors":  # tensors only by construction: nothing to refuse
        return load_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's wording: "Unsupported global: GLOBAL x.y" (before 2.9), "unsupported GLOBAL x.y whose module" (2.14)
        found = re.search(r"(?:Unsupported global: |unsupported )GLOBAL ([\w.]+)", str(err))
        if not found:  # not a refused class: the file itself is damaged or not a torch.save file
            raise UserError(f"could not read weights file {path}: it is truncated or not a torch.save file; "
                            f"download or save it again") from None
        raise UserError(
            f"Refused to load {path}: it is a pickle that needs code execution to unpickle (it references "
            f"{found.group(1)}). Only tensors and plain containers are loaded (torch.load weights_only=True). Fix: "
            f"re-save just the state dict from a trusted environment: torch.save(model.state_dict(), "
            f"'weights.pth').") from None
    except (RuntimeError, EOFError, OSError) as err:
        raise UserError(f"could not read weights file {path}: {err}. Is it a complete torch.save file?") from None


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except (SafetensorError, OSError) as err:
        raise UserError(f"could not read weights file {path}: {err}; download or save it again") from None


def is_state_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def extract_state_dict(obj: Any, path: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside a checkpoint (top level or under a usual wrapper key)."""
    if is_state_dict(obj):
        return dict(obj)
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if key in obj:
                return extract_state_dict(obj[key], path)
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
        raise UserError(f"{path} is not a state dict: no tensors at the top level or under {list(WRAPPER_KEYS)}; "
                        f"its keys are {list(obj)[:SHOWN_KEYS]}. Save model.state_dict() instead.")
    raise UserError(f"{path} is not a state dict (it holds a {type(obj).__name__}). Save model.state_dict() instead.")


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip wrapper prefixes (repeatedly) from the keys that carry them, unless that would collide."""
    changed = True
    while changed:
        changed = False
        for prefix in STRIP_PREFIXES:
            stripped = {k.removeprefix(prefix): v for k, v in state.items()}
            if len(stripped) == len(state) and stripped.keys() != state.keys():
                state, changed = stripped, True
    return state


@dataclass
class LoadReport:
    loaded: int
    ignored_head: list[str]
    unexpected: list[str]

    def lines(self) -> list[str]:
        lines = [f"loaded {self.loaded} tensors"]
        if self.ignored_head:
            lines.append(f"ignored {len(self.ignored_head)} classifier-head keys: {self.ignored_head[:SHOWN_KEYS]}")
        if self.unexpected:
            lines.append(f"ignored {len(self.unexpected)} unexpected keys (first: {self.unexpected[:SHOWN_KEYS]})")
        return lines


def load_into(model: nn.Module, state: dict[str, torch.Tensor], arch: str, path: Path | str) -> LoadReport:
    """Load a (prefix-stripped) state dict into a head-less model; error if it does not fit."""
    target = model.state_dict()
    state = strip_prefixes(state)
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    mismatched = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
                  for k in target if k in state and state[k].shape != target[k].shape]
    extra = [k for k in state if k not in target]
    head = [k for k in extra if k.startswith(HEAD_PREFIXES)]
    unexpected = [k for k in extra if k not in head]
    if missing or mismatched:
        raise UserError(
            f"{path} does not fit architecture {arch!r}: {len(missing)} missing keys (first: {missing[:SHOWN_KEYS]}), "
            f"{len(mismatched)} shape mismatches ({mismatched[:3]}), {len(unexpected)} unexpected keys "
            f"(first: {unexpected[:SHOWN_KEYS]}). Fix: name the architecture the weights were trained with "
            f"(e.g. timm:resnet50@FILE), or convert the keys.")
    model.load_state_dict({k: v for k, v in state.items() if k in target}, strict=False)
    return LoadReport(loaded=sum(k in state for k in target), ignored_head=head, unexpected=unexpected)
