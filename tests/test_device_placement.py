"""The device defects a GPU run would hit first, caught on the CPU.

Two nets: every pretraining method's loss runs with its model and views on the `meta` device (a tensor
created on the CPU by default then meets a meta tensor and fails, as it would meet a CUDA one), and an
AST scan: every tensor factory in protocol, training, encoder and backbone code names its device, is
moved with `.to(...)`, becomes module state (a Parameter or buffer, moved with the module), draws from a
CPU generator, or carries a `# device:` comment saying why the CPU is right there.
"""

import ast
from pathlib import Path

import pytest
import torch

from benchmark.training import METHODS

PACKAGE = Path(__file__).resolve().parents[1] / "benchmark"
SCANNED = [*sorted((PACKAGE / "protocols").glob("*.py")), *sorted((PACKAGE / "training").rglob("*.py")),
           *sorted((PACKAGE / "encoders").glob("*.py")), PACKAGE / "backbones.py"]
FACTORIES = {"zeros", "ones", "empty", "full", "arange", "linspace", "eye", "rand", "randn", "randint", "randperm",
             "tensor", "as_tensor"}
MODULE_STATE = {"Parameter", "register_buffer"}


def placed(call: ast.Call, parents: dict[ast.AST, ast.AST]) -> bool:
    if any(k.arg in ("device", "generator") for k in call.keywords):
        return True
    parent = parents.get(call)
    if isinstance(parent, ast.Attribute) and parent.attr in ("to", "cuda"):
        return True
    while parent is not None:  # inside nn.Parameter(...) or register_buffer(...): moves with the module
        if isinstance(parent, ast.Call) and getattr(parent.func, "attr", getattr(parent.func, "id", "")) in MODULE_STATE:
            return True
        parent = parents.get(parent)
    return False


def unplaced_factories(path: Path) -> list[str]:
    source = path.read_text()
    tree, lines = ast.parse(source), source.splitlines()
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FACTORIES
                and getattr(node.func.value, "id", "") == "torch" and not placed(node, parents)
                and "# device:" not in lines[node.lineno - 1]):
            found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} torch.{node.func.attr}")
    return found


def test_every_tensor_factory_names_its_device():
    found = [line for path in SCANNED for line in unplaced_factories(path)]
    assert not found, "\n".join(found)


def tiny_method(name):
    from benchmark.training.loop import PretrainConfig, build_method, load_training_images

    arch = {"arch": "vit_tiny_patch16_224", "arch_kwargs": {"img_size": 32, "patch_size": 8}} if name == "mae" else {
        "arch": "resnet18", "small_stem": True}
    config = PretrainConfig(method=name, out="unused.pt", input_size=32, train_subset=64, batch_size=8, **arch)
    data = load_training_images(config)
    return build_method(config, data), data


@pytest.mark.parametrize("name", METHODS.names())
def test_every_pretraining_loss_runs_where_its_inputs_are(name):
    method, data = tiny_method(name)
    images = data.images[:8].float().div(255).expand(-1, 3, -1, -1)
    views = method.views(images, torch.Generator().manual_seed(0))
    method.to("meta")
    loss = method.loss([v.to("meta") for v in views], data.labels[:8].to("meta"))
    assert loss.device.type == "meta" and loss.dtype == torch.float32


def test_the_fine_tune_head_width_is_read_where_the_model_is():
    """Extraction leaves the encoder on the run's device; fine-tuning then sizes its head on a copy."""
    from benchmark.backbones import output_width
    from benchmark.encoders import load_encoder

    encoder = load_encoder("timm:resnet18").to("meta")
    assert output_width(encoder.model, 32) == 512


def test_an_open_clip_text_tower_takes_its_prompts_where_it_is():
    from benchmark.encoders import load_encoder

    encoder = load_encoder("open_clip:ViT-S-32-alt").to("meta")
    assert encoder.encode_text(["a photo of a cat."]).device.type == "meta"


def test_fine_tuning_trains_an_open_clip_image_tower_alone():
    from benchmark.encoders import load_encoder
    from benchmark.protocols.finetune import image_module

    encoder = load_encoder("open_clip:ViT-S-32-alt")
    tower = image_module(encoder.model)
    assert tower is encoder.model.clip.visual
    pixels = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(tower(pixels), encoder.encode(pixels), atol=1e-5)


def test_float32_extraction_is_ieee_float32_and_other_precisions_autocast(monkeypatch):
    """cuDNN convolutions default to TF32 on a GPU; `--precision fp32` turns that off while it extracts."""
    from benchmark.devices import Precision
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.extraction import HalvingEncoder

    encoder = load_encoder("pixels:2")
    seen = []
    monkeypatch.setattr(encoder, "encode", lambda x: seen.append(torch.backends.cudnn.allow_tf32) or x.mean((2, 3)))
    before = torch.backends.cudnn.allow_tf32
    HalvingEncoder(encoder, 4, precision=Precision.FP32)(torch.rand(2, 3, 8, 8))
    HalvingEncoder(encoder, 4, precision=Precision.BF16)(torch.rand(2, 3, 8, 8))
    assert seen == [False, before] and torch.backends.cudnn.allow_tf32 == before


def test_pretraining_autocasts_the_backbone_alone_and_computes_the_loss_in_float32(monkeypatch):
    import torch.nn.functional as F

    from benchmark.training.loop import backbone_autocast
    from benchmark.training.methods import simclr

    method, data = tiny_method("simclr")
    dtypes = []
    original = F.cross_entropy
    monkeypatch.setattr(simclr.F, "cross_entropy", lambda logits, *a, **k: dtypes.append(logits.dtype) or
                        original(logits, *a, **k))
    views = method.views(data.images[:8].float().div(255).expand(-1, 3, -1, -1), torch.Generator().manual_seed(0))
    with backbone_autocast(method, "cpu"):
        assert method.backbone(views[0]).dtype == torch.float32  # bf16 inside, float32 out
        loss = method.loss(views, data.labels[:8])
    assert dtypes == [torch.float32] and loss.dtype == torch.float32
    assert "forward" not in vars(method.backbone)  # the plain forward is back
