"""`reproduce`: a small transfer study from a suite's `pretrain:` section. Every listed method is
pretrained on the source dataset with the same backbone, optimiser and budget; then all of them,
plus a random-init encoder of each architecture used, are evaluated on the suite and tabulated.

    pretrain:
      source: fashion_mnist                      # its train split
      methods: [supervised, simclr, mae, ...]
      arch: resnet18                             # any PretrainConfig field is a shared default
      method_overrides: {mae: {arch: vit_tiny_patch16_224, arch_kwargs: {img_size: 32}}}
      evaluate: {protocols: [knn, linear], preprocessing: {input_size: 32}, datasets: {fashion_mnist: [knn]}}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from benchmark.config import Suite
from benchmark.errors import UserError
from benchmark.registry import unknown_name_message
from benchmark.pipeline.runner import RunOptions, RunReport, evaluate
from benchmark.training import METHODS
from benchmark.training.loop import RANDOM_INIT, PretrainConfig, pretrain, save_untrained

CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(PretrainConfig) if f.name not in ("method", "out", "dataset"))
STUDY_SUFFIX = ":reproduce"  # a study's results are stored under suite "<suite>:reproduce"
STUDY_KEYS = ("source", "methods", "method_overrides", "evaluate", *CONFIG_FIELDS)
BUDGETED = ("steps_per_epoch",)


def study_configs(suite: Suite, out_dir: Path, budget: float = 1.0, device: str = "cpu",
                  data_root: Path | None = None) -> list[PretrainConfig]:
    """One PretrainConfig per method; `budget` scales the steps per epoch (0.5 halves the training)."""
    section = suite.pretrain
    if not section:
        raise UserError(f"suite {suite.name!r} has no pretrain: section; `reproduce` needs one (see suites/offline.yaml)")
    for key in section:
        if key not in STUDY_KEYS:
            raise UserError(f"suite {suite.name!r} pretrain: " + unknown_name_message("key", key, list(STUDY_KEYS)))
    shared = {k: v for k, v in section.items() if k in CONFIG_FIELDS}
    configs = []
    for method in section.get("methods") or []:
        METHODS.get(method)  # an unknown method fails before any training, with close matches
        fields = {**shared, **(section.get("method_overrides") or {}).get(method, {})}
        steps = fields.get("steps_per_epoch")
        if steps:
            fields["steps_per_epoch"] = max(1, round(steps * budget))
        configs.append(PretrainConfig(method=method, dataset=section["source"], device=device, data_root=data_root,
                                      out=out_dir / suite.name / f"{method}.pt", **fields))
    return configs


def baseline_configs(configs: list[PretrainConfig], out_dir: Path, suite: Suite) -> list[PretrainConfig]:
    """A random-init config for each distinct architecture the study trains."""
    baselines = {}
    for config in configs:
        key = (config.arch, repr(sorted(config.arch_kwargs.items())), config.small_stem)
        name = f"random_init-{config.arch}"
        baselines.setdefault(key, dataclasses.replace(config, method=RANDOM_INIT, out=out_dir / suite.name / f"{name}.pt"))
    return list(baselines.values())


def evaluation_suite(suite: Suite) -> tuple[Suite, tuple[str, ...]]:
    """The suite as the study evaluates it (its own name, preprocessing override), and its protocols."""
    spec = suite.pretrain.get("evaluate") or {}
    protocols = tuple(spec.get("protocols") or suite.protocols)
    preprocessing = {**suite.preprocessing, **(spec.get("preprocessing") or {})}
    per_dataset = spec.get("datasets") or {}  # a dataset's protocols in the study, e.g. {fashion_mnist: [knn]}
    datasets = {name: {**options, **({"protocols": per_dataset[name]} if name in per_dataset else {})}
                for name, options in suite.datasets.items()}
    restricted = dataclasses.replace(suite, datasets=datasets)
    datasets = {name: options for name, options in datasets.items() if restricted.tasks(name, protocols)}
    return dataclasses.replace(suite, name=f"{suite.name}{STUDY_SUFFIX}", preprocessing=preprocessing,
                               datasets=datasets), protocols


def reproduce(suite: Suite, options: RunOptions, out_dir: Path = Path("results/pretrained"), budget: float = 1.0,
              echo: Callable[[str], None] = print) -> tuple[RunReport, list[str]]:
    """Pretrain every method (resuming or reusing finished checkpoints), then evaluate them all with
    the random-init baselines. Returns the run report and the training failures."""
    configs = study_configs(suite, out_dir, budget, options.device, options.data_root)
    checkpoints, failures = [], []
    for config in configs:
        try:
            checkpoints.append(pretrain(config, echo))
        except Exception as err:  # one method failing (a user error, or a device one) must not stop the study
            message = str(err) if isinstance(err, UserError) else f"{type(err).__name__}: {err}"
            failures.append(f"pretrain {config.method}: {message}")
            echo(f"FAILED pretrain {config.method}: {message}")
    checkpoints += [save_untrained(config) for config in baseline_configs(configs, out_dir, suite)]
    study, protocols = evaluation_suite(suite)
    run = dataclasses.replace(options, protocols=protocols)
    return evaluate([f"checkpoint:{path}" for path in checkpoints], study, run, echo), failures


__all__ = ["reproduce", "study_configs"]
