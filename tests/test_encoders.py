import argparse

import numpy as np
import pytest
import torch
import torchvision

from benchmark.encoders import ModelSpec, load_encoder
from benchmark.encoders.bundled import BUNDLED, convert_by_order, package_file
from benchmark.encoders.checkpoint import save_checkpoint
from benchmark.encoders.weights import extract_state_dict, safe_load
from benchmark.errors import UserError
from benchmark.preprocessing import Preprocessing


@pytest.fixture(scope="module")
def resnet50_reference():
    torch.manual_seed(1)
    model = torchvision.models.resnet50(weights=None).eval()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def wrap(state, style):
    """The ways public SSL releases ship a ResNet-50 (Ericsson's models)."""
    if style == "moco":  # module.encoder_q.* plus a key encoder, a queue and an MLP head
        out = {f"module.encoder_q.{k}": v for k, v in state.items()}
        out.update({f"module.encoder_k.{k}": v for k, v in list(state.items())[:5]})
        out["module.queue"] = torch.zeros(128, 8)
        return {"state_dict": out, "epoch": 200}
    if style == "backbone_no_fc":
        return {f"backbone.{k}": v for k, v in state.items() if not k.startswith("fc.")}
    if style == "model_prefix":
        return {"model": {f"model.{k}": v for k, v in state.items()}}
    return dict(state)


@pytest.mark.parametrize("style", ["plain", "moco", "backbone_no_fc", "model_prefix"])
def test_ssl_resnet50_checkpoints_load_with_prefixes_stripped(tmp_path, resnet50_reference, style):
    model, state = resnet50_reference
    path = tmp_path / f"{style}.pth"
    torch.save(wrap(state, style), path)
    encoder = load_encoder(f"torchvision:resnet50@{path}")
    assert torch.equal(encoder.model.state_dict()["layer4.2.conv3.weight"], state["layer4.2.conv3.weight"])
    images = torch.randn(2, 3, 64, 64)
    model.fc = torch.nn.Identity()
    with torch.no_grad():
        assert torch.allclose(encoder.encode(images), model(images), atol=1e-5)
    report = " ".join(encoder.load_report)
    if style == "moco":
        assert "unexpected" in report and "encoder_k" in report
    if style != "backbone_no_fc":
        assert "fc.weight" in report  # the classifier head is reported as ignored
    assert not encoder.random_init and "weights_sha256" in encoder.identity


def test_timm_resnet50_reads_the_same_torchvision_keys(tmp_path, resnet50_reference):
    _, state = resnet50_reference
    path = tmp_path / "w.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, path)
    encoder = load_encoder(f"timm:resnet50@{path}")
    assert torch.equal(encoder.model.state_dict()["conv1.weight"], state["conv1.weight"])


def test_pickle_needing_code_execution_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"args": argparse.Namespace(lr=0.1), "state_dict": {}}, path)
    with pytest.raises(UserError, match="code execution"):
        load_encoder(f"timm:resnet18@{path}")


def test_checkpoint_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(UserError, match="not a state dict"):
        load_encoder(f"timm:resnet18@{path}")


def test_weights_of_another_architecture_list_missing_keys(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(UserError, match=r"does not fit architecture 'resnet50'.*missing keys.*layer1\.0\.conv3"):
        load_encoder(f"timm:resnet50@{path}")


def test_missing_weights_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_encoder(f"timm:resnet18@{tmp_path / 'nope.pth'}")


def test_model_spec_parsing_and_errors():
    spec = ModelSpec.parse("timm:resnet50@/w/x.pth")
    assert (spec.source, spec.name, str(spec.weights)) == ("timm", "resnet50", "/w/x.pth")
    assert ModelSpec.parse("checkpoint:/a/b@c.pt").weights.name == "b@c.pt"
    with pytest.raises(UserError, match="SOURCE:NAME"):
        ModelSpec.parse("resnet50")
    with pytest.raises(UserError, match="Did you mean 'timm'"):
        ModelSpec.parse("tim:resnet50")
    with pytest.raises(UserError, match="Did you mean"):
        load_encoder("timm:resnet5O")


def test_random_init_is_flagged_and_reproducible():
    first, second = load_encoder("timm:resnet18"), load_encoder("timm:resnet18")
    assert first.random_init and "[random init]" in first.label and first.identity["init_seed"] == 0
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(),
                                                  second.model.state_dict().values()))


@pytest.mark.parametrize("name, size", [("efficientnet_lite0", 224), ("efficientnet_lite1", 240),
                                        ("efficientnet_lite2", 260)])
def test_bundled_efficientnets_are_really_imagenet_pretrained(name, size):
    """Convert the shipped weights into timm's tf_efficientnet_lite{0,1,2} *with* the classifier and check
    that skimage's cat photo, at the model's own resolution, is ImageNet class 285 (Egyptian cat)."""
    import skimage.data
    import timm
    from PIL import Image

    package, relative, arch = BUNDLED[name]
    model = timm.create_model(arch, pretrained=False).eval()
    model.load_state_dict(convert_by_order(extract_state_dict(safe_load(package_file(package, relative))), model))
    image = Image.fromarray(skimage.data.chelsea()).resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1).float().div(255)
    x = ((x - 0.5) / 0.5)[None]
    with torch.no_grad():
        probabilities = model(x).softmax(-1)[0]
    assert int(probabilities.argmax()) == 285 and float(probabilities.max()) > 0.5
    encoder = load_encoder(f"bundled:{name}")
    assert encoder.load_report[0].startswith("loaded ") and encoder.preprocessing.mean == (0.5, 0.5, 0.5)
    assert encoder.preprocessing.input_size == size and encoder.identity["name"] == name


def test_project_checkpoint_round_trip(tmp_path):
    source = load_encoder("timm:resnet18")
    preprocessing = Preprocessing(input_size=32, resize_size=36, mean=(0.5,) * 3, std=(0.25,) * 3)
    path = save_checkpoint(tmp_path / "ckpt" / "simclr.pt", arch="resnet18", state_dict=source.model.state_dict(),
                           preprocessing=preprocessing, method="simclr", loss_curve=[3.2, 2.9])
    encoder = load_encoder(f"checkpoint:{path}")
    assert encoder.preprocessing == preprocessing and encoder.name == "checkpoint:simclr"
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(encoder.encode(x), source.encode(x))
    assert not list(path.parent.glob("*.tmp"))
    with pytest.raises(UserError, match="not a transferbench checkpoint"):
        torch.save(source.model.state_dict(), tmp_path / "plain.pt")
        load_encoder(f"checkpoint:{tmp_path / 'plain.pt'}")


def test_a_damaged_weights_file_is_not_called_unsafe(tmp_path):
    from benchmark.encoders.weights import safe_load

    (tmp_path / "cut.pth").write_bytes(b"\x80\x02garbage")  # a damaged legacy pickle
    with pytest.raises(UserError, match="truncated or not a torch.save file") as raised:
        safe_load(tmp_path / "cut.pth")
    assert "code execution" not in str(raised.value)


def test_a_bad_arch_kwarg_is_reported_not_retried_away():
    """create_headless retries without dynamic_img_size only when that argument is the one refused."""
    from benchmark.backbones import create_headless

    with pytest.raises(UserError, match="refused an argument.*no_such_argument"):
        create_headless("resnet18", no_such_argument=3)
    assert create_headless("resnet18", channels=(16, 32, 64, 128)).num_features == 128
