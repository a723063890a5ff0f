import json

import numpy as np
import pytest

from benchmark.cache import CACHE_FORMAT_VERSION, FeatureCache
from tests.conftest import test_key
from benchmark.data import DATASETS
from benchmark.encoders import load_encoder
from benchmark.pipeline.inputs import DatasetPlan, feature_key


def arrays(seed=0):
    rng = np.random.default_rng(seed)
    return {"features": rng.normal(size=(50, 16)).astype(np.float32), "labels": rng.integers(0, 3, 50)}


def test_key_hashes_everything_that_changes_features(tmp_path):
    encoder = load_encoder("pixels:8")
    plan = DatasetPlan(DATASETS.get("digits"), None, None, {"name": "digits", "version": 1})
    base = feature_key(encoder, encoder.preprocessing, plan, "train")
    assert base.digest == feature_key(encoder, encoder.preprocessing, plan, "train").digest
    changed = [
        feature_key(encoder, encoder.preprocessing.with_overrides({"input_size": 16}), plan, "train"),
        feature_key(encoder, encoder.preprocessing.with_overrides({"interpolation": "bicubic"}), plan, "train"),
        feature_key(encoder, encoder.preprocessing, plan, "test"),
        feature_key(encoder, encoder.preprocessing, DatasetPlan(plan.spec, None, 100, {"name": "digits",
                                                                                      "train_subset": 100}), "train"),
        feature_key(load_encoder("pixels:4"), encoder.preprocessing, plan, "train"),
    ]
    digests = {base.digest} | {k.digest for k in changed}
    assert len(digests) == 1 + len(changed)


def test_weights_file_change_makes_a_new_entry(tmp_path):
    import torch

    model = load_encoder("timm:resnet18").model
    first, second = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save(model.state_dict(), first)
    state = model.state_dict()
    state["conv1.weight"] = state["conv1.weight"] + 1
    torch.save(state, second)
    plan = DatasetPlan(DATASETS.get("digits"), None, None, {"name": "digits"})
    keys = [feature_key(e, e.preprocessing, plan, "train")
            for e in (load_encoder(f"timm:resnet18@{first}"), load_encoder(f"timm:resnet18@{second}"))]
    assert keys[0].digest != keys[1].digest


def test_round_trip_is_memory_mapped_and_hits(cache_dir):
    cache, key = FeatureCache(cache_dir), test_key(1)
    calls = []
    first, hit1 = cache.get_or_compute(key, lambda: calls.append(1) or arrays())
    second, hit2 = cache.get_or_compute(key, lambda: calls.append(1) or arrays())
    assert (hit1, hit2, len(calls)) == (False, True, 1)
    assert isinstance(second["features"], np.memmap)
    np.testing.assert_array_equal(second["features"], arrays()["features"])
    manifest = json.loads((cache.entry_dir(key) / "manifest.json").read_text())
    assert manifest["key"] == key.fields() and manifest["arrays"]["features"]["shape"] == [50, 16]


@pytest.mark.parametrize("damage", ["bitflip", "truncate", "old_format", "other_key"])
def test_damaged_entries_are_detected_removed_and_rebuilt(cache_dir, damage, caplog):
    cache, key = FeatureCache(cache_dir), test_key(2)
    cache.save(key, arrays())
    entry = cache.entry_dir(key)
    features = entry / "features.npy"
    manifest = json.loads((entry / "manifest.json").read_text())
    if damage == "bitflip":
        raw = bytearray(features.read_bytes())
        raw[-7] ^= 0x10
        features.write_bytes(bytes(raw))
    elif damage == "truncate":
        features.write_bytes(features.read_bytes()[:-100])
    else:
        manifest["cache_format" if damage == "old_format" else "digest"] = (
            CACHE_FORMAT_VERSION - 1 if damage == "old_format" else "0" * 64)
        (entry / "manifest.json").write_text(json.dumps(manifest))
    assert cache.load(key) is None
    assert "invalid" in caplog.text and not entry.exists()
    rebuilt, hit = cache.get_or_compute(key, arrays)
    assert not hit
    np.testing.assert_array_equal(rebuilt["features"], arrays()["features"])


def test_a_crash_while_writing_leaves_no_entry(cache_dir, monkeypatch):
    cache, key = FeatureCache(cache_dir), test_key(3)
    original_save = np.save
    calls = []

    def crash_on_second(path, array):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        original_save(path, array)

    monkeypatch.setattr(np, "save", crash_on_second)
    with pytest.raises(OSError):
        cache.save(key, arrays())
    monkeypatch.undo()
    assert cache.load(key) is None
    assert not list(cache.entry_dir(key).parent.glob(".tmp-*"))
