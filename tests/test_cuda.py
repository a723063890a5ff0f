"""The GPU check: every protocol, pretraining one step per method, the text towers, and a 2-process
torchrun, on CUDA. The tests marked `cuda` run only where CUDA exists (CI has none; `perf/gpu_check.sh`
runs them with perf/gpu.py on a lent GPU). Each also runs on the CPU where that is cheap, so the test
code itself is checked on every machine."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import write_suite
from tests.miniatures import write_karpathy

REPO = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = pytest.param("cuda", marks=needs_cuda)
EVERY_FEATURE_PROTOCOL = ("linear", "knn", "fewshot", "retrieval", "rankme", "alpha_req", "twonn", "calibration",
                          "segmentation", "finetune")


def run(models, suite, tmp_path, device, protocols=()):
    from benchmark.config import load_suite
    from benchmark.pipeline.runner import RunOptions, evaluate

    options = RunOptions(cache_dir=tmp_path / device, results_path=tmp_path / f"{device}.sqlite", device=device,
                         protocols=tuple(protocols))
    report = evaluate(models, load_suite(str(suite)), options, echo=lambda _: None)
    assert not report.failures, report.failures
    return {(r.encoder, r.dataset, r.protocol): r.value for r in report.rows}


@needs_cuda
def test_offline_suite_on_cuda_matches_the_cpu_run(tmp_path):
    """Every protocol of the offline suite, extraction and fine-tuning in the same process (the encoder
    is on the GPU when fine-tuning copies it)."""
    values = {device: run(["bundled:efficientnet_lite0"], "offline", tmp_path, device, EVERY_FEATURE_PROTOCOL)
              for device in ("cpu", "cuda")}
    assert values["cpu"].keys() == values["cuda"].keys()
    for cell, value in values["cpu"].items():
        tolerance = 5.0 if cell[2] in ("finetune", "segmentation") else 1.0  # trained on another device's rounding
        assert abs(values["cuda"][cell] - value) <= tolerance, cell


@pytest.mark.parametrize("device", ["cpu", CUDA])
def test_zero_shot_and_image_text_with_the_text_tower_on_the_device(tmp_path, device):
    """Features extracted in the same process first, so the text tower is on the device when prompts come."""
    import open_clip

    torch.manual_seed(0)
    torch.save(open_clip.create_model("ViT-S-32-alt", pretrained=None).state_dict(), tmp_path / "clip.pt")
    root = write_karpathy(tmp_path / "flickr30k")
    suite = write_suite(tmp_path / "s.yaml", {"flickr30k": {"root": str(root)}, "lfw_faces": {}},
                        {"image_text": {"ks": [1, 2]}, "zeroshot": {}})
    values = run([f"open_clip:ViT-S-32-alt@{tmp_path / 'clip.pt'}"], suite, tmp_path, device)
    assert {cell[1:] for cell in values} == {("flickr30k", "image_text"), ("lfw_faces", "zeroshot")}


@pytest.mark.parametrize("device, methods", [("cpu", ["simclr"]), pytest.param("cuda", None, marks=needs_cuda)])
def test_pretraining_takes_a_step_on_the_device(tmp_path, device, methods):
    from benchmark.training import METHODS
    from benchmark.training.loop import PretrainConfig, pretrain

    for name in methods or METHODS.names():
        arch = ({"arch": "vit_tiny_patch16_224", "arch_kwargs": {"img_size": 32, "patch_size": 8}} if name == "mae"
                else {"arch": "resnet18", "small_stem": True})
        config = PretrainConfig(method=name, out=tmp_path / f"{name}.pt", input_size=32, train_subset=64,
                                batch_size=16, epochs=1, steps_per_epoch=1, device=device, **arch)
        assert pretrain(config, echo=lambda _: None).exists(), name


@needs_cuda
def test_torchrun_two_processes_share_one_gpu(tmp_path):
    """Two ranks on one GPU (gloo carries the collectives: NCCL wants a device per rank): sharded
    extraction, rank 0's feature protocols, and fine-tuning under DDP."""
    suite = write_suite(tmp_path / "s.yaml", {"digits": {}},
                        {"knn": {}, "finetune": {"steps": 4, "batch_size": 16, "lrs": [0.01], "regularisation": [0.0]}},
                        preprocessing={"input_size": 32})
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    done = subprocess.run([*torchrun, str(REPO / "cli.py"), "evaluate", "--suite", str(suite), "--model",
                           "timm:resnet18", "--device", "cuda", "--cache-dir", str(tmp_path / "c"), "--results",
                           str(tmp_path / "r.sqlite")], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "digits finetune" in done.stdout and "digits knn" in done.stdout
