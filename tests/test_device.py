"""One device for the run: every protocol takes it and hands back CPU values (never a device tensor);
extraction precision is part of the cache key. These run on the CPU; tests/test_cuda.py runs the same
suite on a GPU where one exists."""


import numpy as np
import pytest
import torch

from benchmark.devices import Precision, check_device
from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS, Features, FeatureTask, ModelTask, make_protocol

SMALL = {"linear": {"num_wd": 4, "solver": "fast"}, "calibration": {"num_wd": 4, "solver": "fast"},
         "fewshot": {"episodes": 20, "ways": 4, "shots": 5, "queries": 5}, "knn": {"k": [5]},
         "finetune": {"steps": 2, "batch_size": 8, "lrs": [0.01], "regularisation": [0.0]},
         "segmentation": {"epochs": 2}, "zeroshot": {}, "quality": {"max_samples": 100}, "retrieval": {},
         "instance_retrieval": {}, "image_text": {"ks": [1, 2]},
         "lowshot": {"num_wd": 4, "solver": "fast", "shots": [1, 5], "draws": 2},
         "linear_sgd": {"epochs": 2, "lrs": [0.01, 0.1]}, "attentive": {"epochs": 2, "lrs": [1e-3], "weight_decays": [0.0]}}


class HandMadeTextTower:
    """Any object with encode_text and logit_scale serves zero-shot (a typing Protocol, not a class)."""

    logit_scale = 10.0

    def encode_text(self, prompts):
        return torch.stack([torch.tensor([float(len(p)), float(p.count("o")), 1.0, 0.5]) for p in prompts])


def pooled(rng, device):
    x, y = rng.normal(size=(240, 4)).astype(np.float32), np.arange(240) % 4
    x[:, :2] += y[:, None]
    part = lambda s: Features(x[s], y[s])
    return FeatureTask(part(slice(0, 120)), part(slice(120, 160)), part(slice(160, 240)), 4, "top1",
                       class_names=("a", "bo", "coo", "dooo"), text=HandMadeTextTower(), device=device)


def dense(rng, device):
    masks = rng.integers(0, 3, size=(30, 4, 4)).astype(np.uint8)
    x = np.eye(3, dtype=np.float32)[masks].transpose(0, 3, 1, 2)
    part = lambda s: Features(x[s], masks[s])
    return FeatureTask(part(slice(0, 20)), part(slice(20, 24)), part(slice(24, 30)), 3, "miou", "segmentation",
                       device=device)


def dense_classes(rng, device):
    """Dense maps labelled by class (what attentive probing reads): 4 channels on a 3 x 3 grid."""
    y = np.arange(40) % 2
    x = rng.normal(size=(40, 4, 3, 3)).astype(np.float32)
    x[:, 0, 1, 1] += 3 * y
    part = lambda s: Features(x[s], y[s])
    return FeatureTask(part(slice(0, 24)), part(slice(24, 30)), part(slice(30, 40)), 2, "top1", device=device)


def instance(rng, device):
    """A database (labels: own index) and queries labelled with relevance rows (1 = easy, 3 = junk)."""
    database = rng.normal(size=(40, 6)).astype(np.float32)
    queries = database[:4] + 0.01
    relevance = np.zeros((4, 40), np.int8)
    relevance[np.arange(4), np.arange(4)], relevance[:, 39] = 1, 3
    return FeatureTask(Features(database[:32], np.arange(32)), Features(database[32:], np.arange(32, 40)),
                       Features(queries, relevance), 1, "revisited_map", "instance_retrieval", device=device)


def captions(rng, device):
    """Six images, two captions each, in one pool (a caption set's single split)."""
    x = rng.normal(size=(6, 4)).astype(np.float32)
    rows = np.arange(12).reshape(6, 2)
    empty = Features(x[:0], rows[:0])
    texts = tuple(f"{'o' * i} caption {j}" for i in range(6) for j in range(2))
    return FeatureTask(Features(x, rows), empty, empty, 1, "mean_recall", "image_text", texts=texts,
                       text=HandMadeTextTower(), device=device)


def model_task(device):
    from benchmark.data.base import ImageSplit
    from benchmark.encoders import load_encoder

    encoder = load_encoder("timm:resnet18")
    images = ImageSplit(np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8), np.arange(24) % 2)
    idx = np.arange(24)
    part = lambda s: Features(idx[s], images.labels[s])
    return ModelTask(part(slice(0, 12)), part(slice(12, 16)), part(slice(16, 24)), 2, "top1", images=images,
                     encoder=encoder, preprocessing=encoder.preprocessing.with_overrides({"input_size": 16}),
                     device=device)


def holds_no_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return False
    if isinstance(value, dict):
        return all(holds_no_tensor(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(holds_no_tensor(v) for v in value)
    return True


@pytest.mark.parametrize("name", PROTOCOLS.names())
def test_every_protocol_takes_the_device_and_hands_back_cpu_values(name, rng):
    protocol = make_protocol(name, SMALL[name])
    by_name = {"instance_retrieval": lambda: instance(rng, "cpu"), "image_text": lambda: captions(rng, "cpu"),
               "attentive": lambda: dense_classes(rng, "cpu")}
    inputs = by_name.get(name) or {"model": lambda: model_task("cpu"), "dense": lambda: dense(rng, "cpu")}.get(
        protocol.input_kind(), lambda: pooled(rng, "cpu"))
    inputs = inputs()
    result = protocol.evaluate(inputs)
    assert isinstance(result.value, float) and np.isfinite(result.value)
    assert holds_no_tensor(result.details) and holds_no_tensor(result.chosen)
    correct = result.per_example.test_correct
    assert correct is None or (isinstance(correct, np.ndarray) and len(correct) == len(inputs.test))


def test_the_torch_search_equals_faiss_on_the_cpu(rng):
    from benchmark.protocols.knn import nearest_neighbours, torch_nearest_neighbours

    train, queries = rng.normal(size=(3000, 16)).astype(np.float32), rng.normal(size=(70, 16)).astype(np.float32)
    expected = nearest_neighbours(train, queries, 30)
    found = torch_nearest_neighbours(train, queries, 30, "cpu", block_bytes=70 * 4 * 500)  # 6 train chunks
    np.testing.assert_allclose(found[0], expected[0], atol=1e-5)
    assert np.mean(found[1] == expected[1]) > 0.99 and isinstance(found[1], np.ndarray)


def test_bf16_extraction_is_close_to_fp32_and_cached_apart(tmp_path):
    from benchmark.cache import FeatureCache
    from benchmark.config import Suite
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.inputs import ExtractOptions, cached_features, pair

    suite = Suite(name="t", preprocessing={"input_size": 32}, datasets={"lfw_faces": {}})
    encoder, cache = load_encoder("timm:resnet18"), FeatureCache(tmp_path)
    fp32, bf16 = (pair(encoder, "timm:resnet18", suite, "lfw_faces", None, precision) for precision in
                  (Precision.FP32, Precision.BF16))
    (a, keys_a, _), (b, keys_b, _) = (cached_features(cache, p, ExtractOptions(), only=("test",)) for p in (fp32, bf16))
    assert keys_a["test"] != keys_b["test"] and len(list(tmp_path.rglob("manifest.json"))) == 2
    x, y = a["test"].x, b["test"].x
    assert x.dtype == y.dtype == np.float32 and not np.array_equal(x, y)
    cosine = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    assert cosine.min() > 0.99  # bf16 keeps 8 bits of mantissa: features agree in direction to 1%


def test_a_device_this_machine_lacks_is_one_message():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(UserError, match="no CUDA GPU"):
        check_device("cuda")
    with pytest.raises(UserError, match="not a device"):
        check_device("gpu0")


def scalar_two_loop(grad, pairs):
    """The two-loop recursion with Python-float coefficients (one device wait per product)."""
    q, alphas = grad.clone(), []
    for s, y, rho in reversed(pairs):
        alphas.append(rho * float(s @ q))
        q.sub_(y, alpha=alphas[-1])
    if pairs:
        q.mul_(1.0 / (pairs[-1][2] * float(pairs[-1][1] @ pairs[-1][1])))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q.add_(s, alpha=alpha - rho * float(y @ q))
    return q


def test_the_lbfgs_two_loop_never_waits_for_the_device_and_agrees_with_scalars(monkeypatch):
    from benchmark.protocols._logreg import _two_loop

    generator = torch.Generator().manual_seed(0)
    grad, pairs = torch.randn(5000, generator=generator), []
    for _ in range(10):
        s = torch.randn(5000, generator=generator)
        y = 0.5 * s + 0.1 * torch.randn(5000, generator=generator)
        pairs.append((s, y, 1.0 / float(y @ s)))
    expected = scalar_two_loop(grad, pairs)

    def waits(self, *args):
        raise AssertionError("a tensor became a Python number: a GPU would be waited for")

    for method in ("__float__", "item", "tolist"):
        monkeypatch.setattr(torch.Tensor, method, waits)
    got = _two_loop(grad, pairs)
    monkeypatch.undo()
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_a_torch_lbfgs_iteration_waits_a_few_times_not_once_per_history_pair(monkeypatch):
    from benchmark.protocols._logreg import TorchLogReg

    waits = {"n": 0}
    for method in ("__float__", "tolist", "item"):
        original = getattr(torch.Tensor, method)

        def counted(self, *args, _original=original):
            waits["n"] += 1
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, method, counted)
    rng = np.random.default_rng(0)
    model = TorchLogReg("multiclass", 5).fit(rng.normal(size=(600, 40)).astype(np.float32), rng.integers(0, 5, 600), 1.0)
    assert model.iterations >= 8
    assert waits["n"] <= 5 * model.iterations + 5  # the scalar two-loop alone waited 2 x 10 + 1 times per iteration


def test_extraction_is_channels_last_and_folded_on_the_cpu_and_matches_the_models_forward(rng):
    """Extraction runs the model channels_last with its batch norms folded into the convolutions
    (`benchmark.folding`): the same convolutions summed in another order, so pooled and dense features
    agree with the model's own contiguous forward to float32 rounding. The model is left channels_last,
    with its batch norms (fine-tuning trains them), and the dense maps come back as ordinary (N, C, h, w)."""
    from benchmark.data.base import ImageSplit
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.extraction import extract_features
    from benchmark.preprocessing import Preprocessing
    from benchmark.vocab import FeatureKind

    encoder, preprocessing = load_encoder("bundled:efficientnet_lite0"), Preprocessing(input_size=32, resize_size=32)
    split = ImageSplit(rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8), np.arange(10) % 2)
    batch = torch.stack([preprocessing.transform()(split.image_tensor(i)) for i in range(10)])
    with torch.inference_mode():
        pooled, dense = encoder.encode(batch).numpy(), encoder.encode_dense(batch).numpy()
    got_pooled = extract_features(encoder, split, preprocessing, batch_size=4).features
    got_dense = extract_features(encoder, split, preprocessing, batch_size=4, kind=FeatureKind.DENSE).features
    conv = next(p for p in encoder.model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert sum(isinstance(module, torch.nn.BatchNorm2d) for module in encoder.model.modules()) == 49
    assert got_dense.shape == dense.shape and got_dense.flags.c_contiguous
    np.testing.assert_allclose(got_pooled, pooled, rtol=0, atol=1e-4 * np.abs(pooled).max())
    np.testing.assert_allclose(got_dense, dense, rtol=0, atol=1e-4 * np.abs(dense).max())
    assert not np.array_equal(got_pooled, pooled)  # the folded model ran


KERNEL_PROBE = """
import sys
import numpy as np, torch
from benchmark.data.mnist5k import all_images
from benchmark.preprocessing import Preprocessing

digits = [torch.tensor(np.array(image))[None] for image in all_images().images[:200]]
for interpolation in ("bilinear", "bicubic"):
    transform = Preprocessing(interpolation=interpolation).with_overrides({"input_size": 64}).transform()
    np.save(f"{sys.argv[1]}-{interpolation}.npy", torch.stack([transform(image) for image in digits]).numpy())

# ImageTransform against the Compose of the same transforms, bit for bit: digits, RGB and RGBA of odd sizes
rng = np.random.default_rng(0)
images = digits[:100] + [torch.tensor(rng.integers(0, 256, (channels, h, w), dtype=np.uint8))
                         for channels, h, w in zip([3, 4] * 15, *rng.integers(20, 90, (2, 30)))]
compared = 0
for interpolation in ("bicubic", "bilinear", "nearest"):
    for mode, resize in (("shorter", 72), ("square", 64)):
        p = Preprocessing(input_size=64, resize_size=resize, resize_mode=mode, interpolation=interpolation,
                          mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
        ours, reference = p.transform(), p.composed()
        for image in images:
            assert torch.equal(ours(image), reference(image)), (interpolation, mode, image.shape)
            compared += 1
print(compared)
"""


@pytest.fixture(scope="module")
def kernel_probes(tmp_path_factory):
    """`KERNEL_PROBE` run under torch's native (AVX2 here) and generic kernels, in two processes:
    {kernel: (its output folder prefix, its completed process)}."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root, folder = Path(__file__).resolve().parents[1], tmp_path_factory.mktemp("kernels")
    script = folder / "probe.py"
    script.write_text(KERNEL_PROBE)
    probes = {}
    for name, capability in (("native", None), ("generic", "default")):
        env = {**os.environ, "PYTHONPATH": str(root)}
        env.pop("ATEN_CPU_CAPABILITY", None)
        env |= {"ATEN_CPU_CAPABILITY": capability} if capability else {}
        probes[name] = (folder / name, subprocess.run([sys.executable, str(script), str(folder / name)], env=env,
                                                      cwd=root, capture_output=True, text=True))
    return probes


def test_preprocessed_images_are_the_same_under_the_avx2_and_the_generic_kernels(kernel_probes):
    """Issue 33: an ARM machine, or x86 without AVX2, runs torch's generic kernels. Its uint8 bilinear
    resize put 4.5% of MNIST pixels one level (0.017 after normalising) away from the AVX2 kernel's; the
    preprocessing must give both machines the same images to float32 rounding."""
    for name, (_, done) in kernel_probes.items():
        assert done.returncode == 0, (name, done.stderr[-2000:])
    for interpolation in ("bilinear", "bicubic"):
        native, generic = (np.load(f"{kernel_probes[name][0]}-{interpolation}.npy") for name in ("native", "generic"))
        assert native.shape == (200, 3, 64, 64)
        assert np.abs(native - generic).max() <= 1e-5, interpolation  # one uint8 level would be 0.017
    from benchmark.preprocessing import Preprocessing

    assert Preprocessing(interpolation="bilinear").key_fields()["resize_dtype"] == "float32"  # re-keyed features
    assert Preprocessing().key_fields() == Preprocessing().as_dict()  # bicubic's features keep their keys


def test_the_image_transform_gives_the_bits_of_torchvisions_composed_transforms(kernel_probes):
    """`ImageTransform` calls torchvision's kernels directly and resizes a grayscale image once before
    copying it to three channels: on the AVX2 and the generic kernels, every image comes out bit for bit as
    the Compose of the same transforms (the transform before it) makes it (grayscale digits, RGB and RGBA of
    odd sizes; three interpolations, both resize modes)."""
    for name, (_, done) in kernel_probes.items():
        assert done.returncode == 0, (name, done.stderr[-2000:])
        assert done.stdout.split()[-1] == str(6 * 130), name
