"""Batch norm folded into the convolutions for extraction: the same features to float32 rounding, the model
given back exactly as it was, and no fold where the norm does not read the convolution's output alone."""

import pytest
import torch
from torch import nn

from benchmark.folding import folded_batchnorm


def norms(model: nn.Module) -> int:
    return sum(isinstance(module, nn.BatchNorm2d) for module in model.modules())


def with_statistics(norm: nn.BatchNorm2d) -> nn.BatchNorm2d:
    """A batch norm that is far from the identity, so a wrong fold shows in the output."""
    with torch.no_grad():
        norm.running_mean.fill_(1.5)
        norm.running_var.fill_(4.0)
        norm.weight.fill_(2.0)
        norm.bias.fill_(-0.5)
    return norm.eval()


@pytest.fixture(scope="module")
def lite0():
    from benchmark.encoders import load_encoder

    return load_encoder("bundled:efficientnet_lite0").model


def test_a_pretrained_efficientnet_folds_every_norm_and_is_given_back_unchanged(lite0):
    images = torch.randn(4, 3, 32, 32, generator=torch.Generator(device="cpu").manual_seed(1), device="cpu")
    modules_before = [(name, id(module)) for name, module in lite0.named_modules()]
    with torch.inference_mode():
        before = lite0(images)
    with folded_batchnorm(lite0, images[:2]) as folded, torch.inference_mode():
        inside, norms_inside = lite0(images), norms(lite0)
    with torch.inference_mode():
        after = lite0(images)
    assert folded == 49 and norms_inside == 0 and norms(lite0) == 49  # stem, 47 in the blocks, head
    assert (inside - before).abs().max() <= 1e-4 * before.abs().max()  # float32 rounding, not a changed model
    assert not torch.equal(inside, before)  # the folded convolutions really ran
    assert torch.equal(after, before)
    assert [(name, id(module)) for name, module in lite0.named_modules()] == modules_before


class ConvThen(nn.Module):
    """conv -> `between` -> batch norm, optionally adding the conv's output back (a skip around the norm),
    or running the one conv twice."""

    def __init__(self, between=lambda t: t, skip=False, twice=False):
        super().__init__()
        self.conv, self.norm = nn.Conv2d(3, 4, 3, padding=1), with_statistics(nn.BatchNorm2d(4))
        self.between, self.skip, self.twice = between, skip, twice

    def forward(self, x):
        y = self.conv(x)
        out = self.norm(self.between(y))
        if self.skip:
            out = out + y
        return out + self.conv(x) if self.twice else out


@pytest.mark.parametrize("model, why", [
    (ConvThen(), None),
    (ConvThen(between=lambda t: t + 1), "the norm reads another tensor"),
    (ConvThen(skip=True), "the conv's output also goes around the norm: the check against the model refuses"),
    (ConvThen(twice=True), "the conv runs twice"),
])
def test_only_a_norm_that_reads_its_convolution_alone_is_folded(model, why):
    torch.manual_seed(0)
    model.eval()
    images = torch.randn(2, 3, 8, 8, device="cpu")
    with torch.inference_mode():
        expected = model(images)
    with folded_batchnorm(model, images) as folded, torch.inference_mode():
        got = model(images)
    assert folded == (0 if why else 1), why
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert isinstance(model.norm, nn.BatchNorm2d) and type(model.conv) is nn.Conv2d


def test_a_model_in_training_mode_is_never_folded():
    model = ConvThen().train()
    with folded_batchnorm(model, torch.randn(2, 3, 8, 8, device="cpu")) as folded:
        assert folded == 0 and isinstance(model.norm, nn.BatchNorm2d)
