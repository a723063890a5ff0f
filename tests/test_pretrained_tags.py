"""Checkpoints as users hold them: timm pretrained tags through timm's own loader and the Hugging Face
hub cache, tested offline by placing tiny weights where that loader looks (a hub-cache snapshot under
a temporary HF_HOME). Each case runs in a fresh interpreter, because huggingface_hub reads HF_HOME and
HF_HUB_OFFLINE when it is imported."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TAG = "test_resnet.r160_in1k"  # a 0.47M-parameter model that timm publishes as timm/test_resnet.r160_in1k


REVISION = "0123456789abcdef0123456789abcdef01234567"


def hub_snapshot(home: Path, repo: str, weights: dict, revision: str = REVISION):
    """The layout hf_hub_download reads: hub/models--ORG--NAME/{refs/main, snapshots/REV/model.safetensors}."""
    from safetensors.torch import save_file

    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    (folder / "snapshots" / revision).mkdir(parents=True)
    save_file(weights, folder / "snapshots" / revision / "model.safetensors")
    config = {"architecture": "test_resnet", "num_classes": 1000, "num_features": 256,  # as timm's push_to_hf_hub
              "pretrained_cfg": {"input_size": [3, 160, 160], "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 0.95,
                                 "interpolation": "bilinear", "num_classes": 1000, "classifier": "fc"}}
    (folder / "snapshots" / revision / "config.json").write_text(json.dumps(config))
    return folder / "snapshots" / revision / "model.safetensors"


def run_offline(home: Path, code: str) -> subprocess.CompletedProcess:
    env = os.environ | {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    import timm
    import torch

    home = tmp_path_factory.mktemp("hf_home")
    torch.manual_seed(3)
    model = timm.create_model(TAG, pretrained=False)  # with its classifier, as published
    weights = {k: v.contiguous() for k, v in model.state_dict().items()}
    hub_snapshot(home, f"timm/{TAG}", weights)
    torch.save(weights, home / "weights.pth")
    return home


def test_a_tag_loads_timms_weights_from_the_hub_cache_and_equals_the_file(home):
    snapshot = home / "hub" / f"models--timm--{TAG}" / "snapshots" / REVISION / "model.safetensors"
    done = run_offline(home, f"""
        import numpy as np, timm, torch
        from benchmark.encoders import load_encoder
        tagged = load_encoder("timm:{TAG}")
        from_file = load_encoder("timm:{TAG}@{home / 'weights.pth'}")
        same_file = load_encoder("timm:{TAG}@{snapshot}")
        hub_name = load_encoder("timm:hf-hub:timm/{TAG}")
        direct = timm.create_model("{TAG}", num_classes=0).eval()
        direct.load_state_dict({{k: v for k, v in torch.load("{home / 'weights.pth'}").items()
                                 if not k.startswith("fc.")}})
        images = torch.rand(3, 3, 160, 160)
        with torch.no_grad():
            expected = direct(images).numpy()
        assert not tagged.random_init and tagged.preprocessing.input_size == 160
        np.testing.assert_allclose(tagged.encode(images).numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(from_file.encode(images).numpy(), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(hub_name.encode(images).numpy(), expected, rtol=1e-5, atol=1e-6)
        assert tagged.identity == same_file.identity == hub_name.identity  # one file, one identity: one entry
        assert tagged.identity["arch"] == from_file.identity["arch"] == "test_resnet"
        assert tagged.identity != from_file.identity  # the same tensors in another file format
        """)
    assert done.returncode == 0, done.stderr[-3000:]


def extract_offline(home: Path, model: str, cache: Path) -> subprocess.CompletedProcess:
    """`cli.py extract` as a user would type it, with HF_HOME at `home` and the network off."""
    return subprocess.run([sys.executable, "cli.py", "extract", "--model", model, "--dataset", "digits", "--split",
                           "test", "--cache-dir", str(cache)], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"HF_HOME": str(home), "HF_HUB_OFFLINE": "1"})


def test_an_uncached_tag_offline_is_one_message_naming_the_cache_and_the_fix(home, tmp_path):
    done = extract_offline(home, "timm:test_efficientnet.r160_in1k", tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert str(home / "hub") in done.stderr and "HF_HOME" in done.stderr
    assert "timm.create_model('test_efficientnet.r160_in1k', pretrained=True)" in done.stderr


CLIP = "ViT-S-32-alt"  # a small open_clip architecture, built with random weights for the test


@pytest.fixture(scope="module")
def clip_home(tmp_path_factory):
    """An open_clip hub repository, `test/tiny-clip`, in a hub cache: config and weights as open_clip's
    push_to_hf_hub writes them (open_clip_config.json, open_clip_pytorch_model.bin)."""
    import open_clip
    import torch

    home = tmp_path_factory.mktemp("clip_home")
    torch.manual_seed(5)
    clip = open_clip.create_model(CLIP, pretrained=None)
    snapshot = home / "hub" / "models--test--tiny-clip" / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (home / "hub" / "models--test--tiny-clip" / "refs").mkdir()
    (home / "hub" / "models--test--tiny-clip" / "refs" / "main").write_text(REVISION)
    torch.save(clip.state_dict(), snapshot / "open_clip_pytorch_model.bin")
    config = {"model_cfg": open_clip.get_model_config(CLIP),
              "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]}}
    (snapshot / "open_clip_config.json").write_text(json.dumps(config))
    return home


def test_open_clip_hub_names_and_tags_load_through_open_clips_cache(clip_home):
    weights = clip_home / "hub" / "models--test--tiny-clip" / "snapshots" / REVISION / "open_clip_pytorch_model.bin"
    done = run_offline(clip_home, f"""
        import numpy as np, open_clip, torch
        from open_clip import pretrained
        from benchmark.encoders import load_encoder
        pretrained._PRETRAINED.setdefault("{CLIP}", {{}})["tiny"] = pretrained._pcfg(hf_hub="test/tiny-clip/")
        hub = load_encoder("open_clip:hf-hub:test/tiny-clip")
        tagged = load_encoder("open_clip:{CLIP}:tiny")
        from_file = load_encoder("open_clip:{CLIP}@{weights}")
        direct = open_clip.create_model("{CLIP}", pretrained=None).eval()
        direct.load_state_dict(torch.load("{weights}"))
        images = torch.rand(2, 3, 224, 224)
        with torch.no_grad():
            expected = direct.encode_image(images).numpy()
            text = direct.encode_text(open_clip.get_tokenizer("{CLIP}")(["a photo of a cat."])).numpy()
        for encoder in (hub, tagged, from_file):
            np.testing.assert_allclose(encoder.encode(images).numpy(), expected, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(encoder.encode_text(["a photo of a cat."]).numpy(), text, rtol=1e-4, atol=1e-5)
            assert not encoder.random_init and encoder.logit_scale == float(direct.logit_scale.exp())
        assert hub.identity["weights_sha256"] == tagged.identity["weights_sha256"] == from_file.identity["weights_sha256"]
        assert tagged.identity == from_file.identity
        pre = load_encoder("open_clip:{CLIP}@{weights}#proj=pre")  # the embedding before the projection
        with torch.no_grad():
            projected = (pre.encode(images).clone() @ direct.visual.proj).numpy()
        np.testing.assert_allclose(projected, expected, rtol=1e-4, atol=1e-5)
        assert pre.text_fn is None and pre.identity["features"] == {{"pool": "default", "blocks": 1, "proj": "pre"}}
        """)
    assert done.returncode == 0, done.stderr[-3000:]


def test_an_uncached_open_clip_tag_offline_is_one_message(clip_home, tmp_path):
    done = extract_offline(clip_home, "open_clip:ViT-B-32:laion2b_s34b_b79k", tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "open_clip.create_model('ViT-B-32', pretrained='laion2b_s34b_b79k')" in done.stderr
    assert str(clip_home / "hub") in done.stderr and "HF_HOME" in done.stderr


def test_timm_vit_tokens_pooled_as_chosen_equal_timms_own_intermediate_layers(tmp_path):
    import numpy as np
    import timm
    import torch

    from benchmark.encoders import load_encoder

    torch.manual_seed(7)
    direct = timm.create_model("test_vit", num_classes=0).eval()
    torch.save(direct.state_dict(), tmp_path / "vit.pth")
    images = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        (last_but_one, _), (last, last_prefix) = direct.get_intermediate_layers(images, n=2, norm=True,
                                                                                return_prefix_tokens=True)
        # forward_intermediates' view of the same blocks, as an independent route to the class tokens
        _, blocks = direct.forward_intermediates(images, indices=2, norm=True, output_fmt="NLC",
                                                 return_prefix_tokens=True)
    cls_tokens = [prefix[:, 0] for _, prefix in blocks]
    dinov2 = torch.cat([*cls_tokens, last.mean(1)], dim=1)
    chosen = load_encoder(f"timm:test_vit@{tmp_path / 'vit.pth'}#pool=cls+mean,blocks=2")
    np.testing.assert_allclose(chosen.encode(images).numpy(), dinov2.numpy(), rtol=1e-5, atol=1e-5)
    mae = load_encoder(f"timm:test_vit@{tmp_path / 'vit.pth'}#pool=mean")
    np.testing.assert_allclose(mae.encode(images).numpy(), last.mean(1).numpy(), rtol=1e-5, atol=1e-5)
    assert last_prefix.shape[1] == direct.num_prefix_tokens and last_but_one.shape == last.shape
    assert chosen.identity != mae.identity and chosen.identity["weights_sha256"] == mae.identity["weights_sha256"]
