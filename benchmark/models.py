"""Model lists (suites/models/NAME.yaml): named encoders of a published study, each with its
architecture, expected weights file name, sha256 where published and key prefixes, so a whole
study's encoders are evaluated with `evaluate --models NAME --weights-dir DIR`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from benchmark.config import SUITES_DIR
from benchmark.errors import MissingDataError, UserError
from benchmark.identity import file_sha256
from benchmark.registry import unknown_name_message

MODELS_DIR = SUITES_DIR / "models"


@dataclass(frozen=True)
class ListedModel:
    name: str  # as the reference table names it
    arch: str
    source: str
    weights: str
    sha256: str | None = None
    prefixes: tuple[str, ...] = ()
    note: str = ""

    def spec(self, weights_dir: Path) -> str:
        return f"{self.source}:{self.arch}@{weights_dir / self.weights}"


def load_model_list(name: str) -> list[ListedModel]:
    path = MODELS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise UserError(unknown_name_message("model list", name, sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))))
    entries = (yaml.safe_load(path.read_text()) or {}).get("models") or []
    try:
        return [ListedModel(**{**entry, "prefixes": tuple(entry.get("prefixes") or ())}) for entry in entries]
    except TypeError as err:
        raise UserError(f"{path}: {err}") from None


def model_specs(name: str, weights_dir: Path) -> list[str]:
    """Specs of every listed model whose weights file is in `weights_dir` (checked against its sha256
    when one is published); a missing file is an error naming each one expected."""
    listed = load_model_list(name)
    missing = [m.weights for m in listed if not (weights_dir / m.weights).is_file()]
    if missing:
        raise MissingDataError(f"{len(missing)} of {len(listed)} weights files of model list {name!r} are not in "
                               f"{weights_dir}: {', '.join(missing)} (names as suites/models/{name}.yaml lists them)")
    for model in listed:
        if model.sha256 and file_sha256(weights_dir / model.weights) != model.sha256:
            raise UserError(f"{weights_dir / model.weights} does not match the published sha256 of {model.name}; "
                            f"re-download it")
    return [m.spec(weights_dir) for m in listed]


def reference_names(list_name: str, labels) -> dict[str, str]:
    """Our encoder labels mapped to a reference table's names: through the model list's weights file
    names (`...@moco-v2.pth` is MoCo-v2), or a label that already is a reference name."""
    listed = load_model_list(list_name) if (MODELS_DIR / f"{list_name}.yaml").is_file() else []
    by_file = {m.weights: m.name for m in listed}
    names = {}
    for label in set(labels):
        weights = str(label).rpartition("@")[2]
        names[label] = by_file.get(weights, label)
    return names
