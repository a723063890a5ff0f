"""Pretraining: each loss against a direct transcription of its paper's formula (values and
gradients), the anti-collapse mechanisms, resume-equals-uninterrupted, and the checkpoint round trip."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.training.methods.barlow_twins import barlow_twins_loss
from benchmark.training.methods.byol import byol_loss
from benchmark.training.methods.dino import dino_loss
from benchmark.training.methods.lit import clip_loss
from benchmark.training.methods.mae import mae_loss, patchify
from benchmark.training.methods.moco_v2 import moco_infonce
from benchmark.training.methods.simclr import nt_xent
from benchmark.training.methods.simsiam import simsiam_loss
from benchmark.training.methods.swav import sinkhorn, swav_loss
from benchmark.training.methods.vicreg import vicreg_loss

torch.manual_seed(0)


def tensors(*shapes):
    generator = torch.Generator().manual_seed(42)
    return [torch.randn(shape, generator=generator, dtype=torch.float64, requires_grad=True) for shape in shapes]


def assert_same_value_and_gradients(ours, reference, inputs):
    """Equal loss values and equal gradients with respect to every input."""
    value, expected = ours(*inputs), reference(*inputs)
    assert value.item() == pytest.approx(expected.item(), rel=1e-9, abs=1e-12)
    grads = torch.autograd.grad(value, inputs, allow_unused=True)
    expected_grads = torch.autograd.grad(expected, inputs, allow_unused=True)
    for got, want in zip(grads, expected_grads):
        if want is None:
            assert got is None or torch.count_nonzero(got) == 0
        else:
            torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-10)


def cos(a, b):
    return (a * b).sum() / (a.norm() * b.norm())


def test_simclr_nt_xent_is_algorithm_1_of_the_paper():
    # SimCLR Alg. 1: views interleaved (2k-1, 2k); l(i,j) = -log exp(s_ij/t) / sum_{k != i} exp(s_ik/t)
    def reference(z1, z2, t=0.5):
        views = [v for pair in zip(z1, z2) for v in pair]
        s = lambda i, j: cos(views[i], views[j])  # noqa: E731
        l = lambda i, j: -torch.log(torch.exp(s(i, j) / t) / sum(torch.exp(s(i, k) / t) for k in range(len(views)) if k != i))  # noqa: E731,E741
        n = len(z1)
        return sum(l(2 * k, 2 * k + 1) + l(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)

    assert_same_value_and_gradients(lambda a, b: nt_xent(a, b, 0.5), reference, tensors((6, 5), (6, 5)))


def test_moco_infonce_matches_eq_1():
    # MoCo eq. 1: L_q = -log exp(q.k+/t) / (exp(q.k+/t) + sum_i exp(q.k_i/t)), averaged over queries
    def reference(q, k, queue, t=0.2):
        losses = []
        for qi, ki in zip(q, k):
            positive = torch.exp(qi @ ki / t)
            losses.append(-torch.log(positive / (positive + sum(torch.exp(qi @ n / t) for n in queue))))
        return sum(losses) / len(losses)

    q, k, queue = tensors((4, 8), (4, 8), (10, 8))
    unit = lambda x: F.normalize(x, dim=1)  # noqa: E731
    assert_same_value_and_gradients(lambda a, b, c: moco_infonce(unit(a), unit(b), unit(c), 0.2),
                                    lambda a, b, c: reference(unit(a), unit(b), unit(c)), [q, k, queue])


def test_byol_loss_is_the_normalised_mse_with_a_stopped_target():
    # BYOL eq. 2: || q/|q| - z'/|z'| ||^2 = 2 - 2 cos(q, z'), gradient only through the online side
    def reference(p, z):
        return sum(((pi / pi.norm() - zi.detach() / zi.detach().norm()) ** 2).sum() for pi, zi in zip(p, z)) / len(p)

    assert_same_value_and_gradients(byol_loss, reference, tensors((5, 7), (5, 7)))


def test_simsiam_loss_is_symmetrised_negative_cosine_with_stop_gradient():
    # SimSiam eq. 4: L = D(p1, stopgrad(z2))/2 + D(p2, stopgrad(z1))/2, D = -cos
    def reference(p1, p2, z1, z2):
        d = lambda p, z: -sum(cos(pi, zi.detach()) for pi, zi in zip(p, z)) / len(p)  # noqa: E731
        return d(p1, z2) / 2 + d(p2, z1) / 2

    assert_same_value_and_gradients(simsiam_loss, reference, tensors((5, 6), (5, 6), (5, 6), (5, 6)))


def test_barlow_twins_loss_is_eq_1_with_the_batch_cosine_cross_correlation():
    # Barlow Twins eq. 1-2: C_ij = sum_b zA_bi zB_bj / (sqrt(sum_b zA_bi^2) sqrt(sum_b zB_bj^2)) on
    # batch-centred embeddings; L = sum_i (1 - C_ii)^2 + lambda sum_i sum_{j != i} C_ij^2
    def reference(za, zb, lam=0.0051):
        za, zb = za - za.mean(0), zb - zb.mean(0)
        d = za.shape[1]
        c = [[(za[:, i] * zb[:, j]).sum() / (za[:, i].pow(2).sum().sqrt() * zb[:, j].pow(2).sum().sqrt())
              for j in range(d)] for i in range(d)]
        return sum((1 - c[i][i]) ** 2 for i in range(d)) + lam * sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)

    assert_same_value_and_gradients(lambda a, b: barlow_twins_loss(a, b, 0.0051), reference, tensors((8, 4), (8, 4)))


def test_vicreg_loss_is_algorithm_1_of_the_paper():
    # VICReg Alg. 1: 25 * mse + 25 * [mean relu(1 - sqrt(var + 1e-4)) for each branch, summed]
    #               + 1 * [sum of squared off-diagonal covariances / d for each branch, summed]
    def reference(za, zb):
        n, d = za.shape
        invariance = sum(((za[b] - zb[b]) ** 2).sum() for b in range(n)) / (n * d)
        variance = sum(sum(torch.relu(1 - torch.sqrt(z[:, j].var() + 1e-4)) for j in range(d)) / d for z in (za, zb))
        covariance = 0
        for z in (za, zb):
            centred = z - z.mean(0)
            cov = [[(centred[:, i] * centred[:, j]).sum() / (n - 1) for j in range(d)] for i in range(d)]
            covariance = covariance + sum(cov[i][j] ** 2 for i in range(d) for j in range(d) if i != j) / d
        return 25 * invariance + 25 * variance + covariance

    assert_same_value_and_gradients(vicreg_loss, reference, tensors((7, 5), (7, 5)))


def test_sinkhorn_codes_are_an_equipartition_and_swav_loss_is_the_swapped_prediction():
    scores = torch.randn(12, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    codes = sinkhorn(scores, epsilon=0.5, iterations=100)
    np.testing.assert_allclose(codes.sum(1), 1, rtol=1e-6)  # each sample's codes sum to 1
    np.testing.assert_allclose(codes.sum(0), 12 / 4, rtol=1e-3)  # each prototype gets B/K of the batch

    # SwAV eq. 1 with multi-crop: for each global crop i, codes q_i predicted from every other crop v:
    # -sum_k q_i^k log softmax(s_v / t)^k, averaged over the other crops, then over the two global crops
    def reference(*views, t=0.1):
        total = 0
        for i in range(2):
            q = sinkhorn(views[i].detach())
            others = [v for v in range(len(views)) if v != i]
            for v in others:
                p = torch.exp(views[v] / t) / torch.exp(views[v] / t).sum(1, keepdim=True)
                total = total - (q * torch.log(p)).sum(1).mean() / len(others)
        return total / 2

    views = tensors(*[(6, 5)] * 4)
    assert_same_value_and_gradients(lambda *v: swav_loss(list(v), 0.1), reference, views)


def test_dino_loss_is_the_cross_entropy_between_centred_sharpened_teacher_and_student():
    # DINO Alg. 1: H(t, s) = -sum softmax((t - C)/tt) log softmax(s/ts), over teacher globals x other student views
    def reference(s0, s1, s2, t0, t1, center, ts=0.1, tt=0.04):
        student, teacher = [s0, s1, s2], [t0, t1]
        terms = []
        for i, t in enumerate(teacher):
            pt = torch.softmax((t.detach() - center) / tt, dim=1)
            for v, s in enumerate(student):
                if v != i:
                    terms.append(-(pt * torch.log_softmax(s / ts, dim=1)).sum(1).mean())
        return sum(terms) / len(terms)

    inputs = tensors((4, 6), (4, 6), (4, 6), (4, 6), (4, 6))
    center = torch.randn(1, 6, dtype=torch.float64) * 0.1
    assert_same_value_and_gradients(lambda s0, s1, s2, t0, t1: dino_loss([s0, s1, s2], [t0, t1], center, 0.1, 0.04),
                                    lambda *a: reference(*a, center), inputs)


def test_mae_loss_is_the_mse_on_masked_patches_of_normalised_pixels():
    images = tensors((2, 3, 8, 8))[0]
    prediction = tensors((2, 4, 48))[0]
    mask = torch.tensor([[1.0, 0, 1, 1], [0, 1, 1, 0]], dtype=torch.float64)

    def reference(prediction, images):
        total, count = 0, 0
        for n in range(2):
            for row in range(2):
                for col in range(2):
                    patch = images[n, :, row * 4:(row + 1) * 4, col * 4:(col + 1) * 4].permute(1, 2, 0).reshape(-1)
                    target = (patch - patch.mean()) / torch.sqrt(patch.var() + 1e-6)
                    if mask[n, row * 2 + col]:
                        total = total + ((prediction[n, row * 2 + col] - target) ** 2).mean()
                        count += 1
        return total / count

    assert_same_value_and_gradients(lambda p, x: mae_loss(p, patchify(x, 4), mask), reference, [prediction, images])


def test_clip_loss_is_the_symmetric_infonce():
    # CLIP: logits = scale * cos(I_i, T_j); loss = (CE over rows + CE over columns) / 2
    def reference(image, text, scale):
        n = len(image)
        logits = [[scale * cos(image[i], text[j]) for j in range(n)] for i in range(n)]
        rows = sum(-logits[i][i] + torch.log(sum(torch.exp(logits[i][j]) for j in range(n))) for i in range(n)) / n
        cols = sum(-logits[j][j] + torch.log(sum(torch.exp(logits[i][j]) for i in range(n))) for j in range(n)) / n
        return (rows + cols) / 2

    assert_same_value_and_gradients(clip_loss, reference, tensors((5, 4), (5, 4), ()))


TINY = {"arch": "resnet18", "arch_kwargs": {"channels": [16, 32, 64, 128], "stem_width": 16}, "input_size": 16,
        "batch_size": 64, "train_subset": 512}


def trained_method(tmp_path, name, steps=20, **overrides):
    from benchmark.training.loop import PretrainConfig, build_method, load_training_images, run_epoch, warmup_cosine

    config = PretrainConfig(method=name, out=tmp_path / f"{name}.pt", epochs=1, steps_per_epoch=steps,
                            **{**TINY, **overrides})
    data = load_training_images(config)
    method = build_method(config, data)
    optimizer = torch.optim.AdamW([p for p in method.parameters() if p.requires_grad], lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(steps, 0.05))
    run_epoch(method, optimizer, schedule, data, config, 0, steps)
    images = data.images[:256].float().div(255).expand(-1, 3, -1, -1)
    return method, method.views(images, torch.Generator().manual_seed(5))


def normalised_std(outputs: torch.Tensor) -> float:
    """SimSiam's collapse monitor: std over the batch of L2-normalised outputs, times sqrt(d):
    about 1 for outputs spread over the sphere, 0 for a collapsed (constant) output."""
    z = F.normalize(outputs.detach(), dim=1)
    return float(z.std(0).mean() * math.sqrt(z.shape[1]))


@pytest.mark.parametrize("name", ["byol", "simsiam", "dino"])
def test_collapse_prone_methods_keep_their_outputs_spread(tmp_path, name):
    """After 20 steps the representation the loss acts on is still spread over the sphere (measured
    here: 0.66 BYOL projection, 0.64 SimSiam projection, 0.75 DINO backbone; collapse gives 0)."""
    method, views = trained_method(tmp_path, name)
    method.eval()
    with torch.no_grad():
        outputs = {"byol": lambda x: method.online(x),
                   "simsiam": lambda x: method.projector(method.backbone(x)),
                   "dino": lambda x: method.backbone(x)}[name](views[0])
        if name == "dino":  # and the teacher's centred, sharpened targets are not all one dimension
            targets = F.softmax((method.teacher(views[0]) - method.center) / method.params.teacher_temperature, dim=1)
            assert targets.mean(0).max() < 0.5
    assert normalised_std(outputs) > 0.3, f"{name} collapsed: normalised std {normalised_std(outputs):.3f}"


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    from benchmark.encoders.checkpoint import read_checkpoint
    from benchmark.training import loop

    config = loop.PretrainConfig(method="moco_v2", out=tmp_path / "straight.pt", epochs=3, steps_per_epoch=3,
                                 **TINY, method_params={"queue_size": 256})
    loop.pretrain(config, echo=lambda _: None)
    interrupted = loop.PretrainConfig(**{**vars(config), "out": tmp_path / "resumed.pt"})
    real_run_epoch, calls = loop.run_epoch, []

    def crash_in_second_epoch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_run_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "run_epoch", crash_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        loop.pretrain(interrupted, echo=lambda _: None)
    assert (tmp_path / "resumed.pt.state").exists() and not (tmp_path / "resumed.pt").exists()
    monkeypatch.setattr(loop, "run_epoch", real_run_epoch)
    messages = []
    loop.pretrain(interrupted, echo=messages.append)
    assert messages[0].startswith("moco_v2 epoch 2/3")  # epoch 1 was not redone
    straight, resumed = read_checkpoint(tmp_path / "straight.pt"), read_checkpoint(tmp_path / "resumed.pt")
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    assert all(torch.equal(straight["state_dict"][k], resumed["state_dict"][k]) for k in straight["state_dict"])
    assert straight["metadata"]["loss_curve"] == resumed["metadata"]["loss_curve"]


def test_checkpoint_records_its_training_and_loads_for_evaluation(tmp_path):
    from benchmark.encoders import load_encoder
    from benchmark.encoders.checkpoint import read_checkpoint
    from benchmark.training.loop import PretrainConfig, pretrain

    path = pretrain(PretrainConfig(method="simclr", out=tmp_path / "simclr.pt", epochs=1, steps_per_epoch=2,
                                   small_stem=True, **TINY), echo=lambda _: None)
    payload = read_checkpoint(path)
    meta = payload["metadata"]
    assert meta["method"] == "simclr" and meta["data"]["train_subset"] == 512 and len(meta["loss_curve"]) == 1
    assert meta["data"]["images"] == 510 and meta["data"]["dataset"] == "fashion_mnist"  # 51 per class (stratified)
    assert meta["config"]["arch"] == "resnet18" and payload["arch_kwargs"]["small_stem"] is True
    assert payload["preprocessing"]["input_size"] == 16
    encoder = load_encoder(f"checkpoint:{path}")
    assert encoder.model.conv1.kernel_size == (3, 3) and encoder.encode(torch.zeros(2, 3, 16, 16)).shape == (2, 128)
    assert pretrain(PretrainConfig(method="simclr", out=path, epochs=1, steps_per_epoch=2, small_stem=True, **TINY),
                    echo=lambda _: None) == path  # already trained: reused, not retrained
    with pytest.raises(Exception, match="another configuration"):
        pretrain(PretrainConfig(method="simclr", out=path, epochs=2, steps_per_epoch=2, **TINY), echo=lambda _: None)


def test_reproduce_trains_each_method_then_evaluates_them_with_a_random_init_baseline(tmp_path, capsys):
    import yaml

    import cli

    suite = tmp_path / "study.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "study", "protocols": {"knn": {"k": [5]}, "linear": {"solver": "fast"}},
        "datasets": {"digits": {}},
        "pretrain": {"source": "fashion_mnist", "methods": ["supervised", "rotation"], "epochs": 1,
                     "steps_per_epoch": 4, **TINY,
                     "evaluate": {"protocols": ["knn"], "preprocessing": {"input_size": 16}}}}))
    args = ["reproduce", "--suite", str(suite), "--out-dir", str(tmp_path / "pt"), "--results",
            str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "c"), "--budget", "0.5"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "study study: 3 encoders, 3 results" in out and "### knn" in out and "| digits " in out and "linear" not in out
    assert "checkpoint:random_init-resnet18 [random init]" in out
    from benchmark.encoders.checkpoint import read_checkpoint

    meta = read_checkpoint(tmp_path / "pt" / "study" / "rotation.pt")["metadata"]
    assert meta["steps_per_epoch"] == 2  # --budget 0.5 halves the suite's 4 steps
    assert cli.main(args) == 0  # a second run reuses checkpoints and stored results
    assert "already trained with this configuration" in capsys.readouterr().out
