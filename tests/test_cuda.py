"""The offline suite on a GPU, against the same run on the CPU. Runs only where CUDA exists (CI has
none; see the README for where it was last run)."""

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def test_offline_suite_on_cuda_matches_the_cpu_run(tmp_path):
    from benchmark.config import load_suite
    from benchmark.pipeline.runner import RunOptions, evaluate

    suite = load_suite("offline")
    values = {}
    for device in ("cpu", "cuda"):
        options = RunOptions(cache_dir=tmp_path / device, results_path=tmp_path / f"{device}.sqlite", device=device,
                             protocols=("linear", "knn", "fewshot", "segmentation", "finetune"))
        report = evaluate(["bundled:efficientnet_lite0"], suite, options, echo=lambda _: None)
        assert not report.failures
        values[device] = {(r.dataset, r.protocol): r.value for r in report.rows}
    assert values["cpu"].keys() == values["cuda"].keys()
    for cell, value in values["cpu"].items():
        tolerance = 5.0 if cell[1] in ("finetune", "segmentation") else 1.0  # trained on another device's rounding
        assert abs(values["cuda"][cell] - value) <= tolerance, cell
