import numpy as np
import pytest
import torch

from benchmark.data import DATASETS, load_split
from benchmark.encoders import load_encoder
from benchmark.pipeline.extraction import extract_features

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def digits_features():
    """Real features: sklearn digits through the raw-pixel encoder at 8x8 (64-d)."""
    encoder = load_encoder("pixels:8")
    spec = DATASETS.get("digits")
    out = {}
    for split in ("train", "test"):
        data = load_split(spec, split, None)
        out[split] = (extract_features(encoder, data, encoder.preprocessing).features, data.labels)
    return out


@pytest.fixture
def cache_dir(tmp_path):
    return tmp_path / "cache"


def write_suite(path, datasets, protocols, preprocessing=None, name="tiny"):
    import yaml

    path.write_text(yaml.safe_dump({"name": name, "version": 1, "preprocessing": preprocessing or {},
                                    "protocols": protocols, "datasets": datasets}, sort_keys=False))
    return path


def evaluate_one_column(tmp_path, capsys, protocol, params, dataset, models, preprocessing):
    """`evaluate` of a one-column suite on one dataset for `models`: (exit code, printed output, latest rows)."""
    import cli
    from benchmark.results import ResultsStore

    suite = write_suite(tmp_path / "s.yaml", {dataset: {"protocols": [protocol]}}, {protocol: params}, preprocessing,
                        name="s")
    argv = ["evaluate", "--suite", str(suite), "--results", str(tmp_path / "r.sqlite"), "--cache-dir",
            str(tmp_path / "cache")]
    code = cli.main(argv + [arg for model in models for arg in ("--model", model)])
    return code, capsys.readouterr().out, ResultsStore(tmp_path / "r.sqlite").latest()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_key(name):
    """A feature key that differs from every real one (for cache tests that need no encoder)."""
    from benchmark.devices import Precision
    from benchmark.identity import FeatureKey
    from benchmark.vocab import FeatureKind

    return FeatureKey({"test": name}, {}, {}, "train", FeatureKind.POOLED, Precision.FP32)


test_key.__test__ = False  # a helper, not a test
