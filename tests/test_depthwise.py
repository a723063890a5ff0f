"""The multi-sum weight gradient of small-map depthwise convolutions equals oneDNN's, and only those
convolutions take it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.depthwise import small_map_depthwise_grad


def gradients(conv: nn.Conv2d, image: torch.Tensor, fast: bool) -> tuple[torch.Tensor, ...]:
    conv.zero_grad()
    image = image.detach().clone().requires_grad_()
    if fast:
        with small_map_depthwise_grad():
            out = conv(image)
    else:
        out = conv(image)
    (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
    grads = [out.detach(), image.grad, conv.weight.grad] + ([conv.bias.grad] if conv.bias is not None else [])
    return tuple(g.clone() for g in grads), out.grad_fn.name()


@pytest.mark.parametrize("size,kernel,stride,padding,dilation,bias,layout", [
    (2, 5, 1, 2, 1, False, torch.channels_last),   # EfficientNet's last stage at 64 px
    (4, 3, 1, 1, 1, True, torch.contiguous_format),
    (7, 5, 2, 0, 1, False, torch.channels_last),   # a "same"-padded stride-2 conv after its explicit pad
    (4, 3, 1, 2, 2, True, torch.channels_last),    # dilated
    (5, 3, 2, 1, 1, False, torch.contiguous_format),
])
def test_weight_input_and_bias_gradients_match_onednn(size, kernel, stride, padding, dilation, bias, layout):
    torch.manual_seed(0)
    conv = nn.Conv2d(24, 24, kernel, stride, padding, dilation, groups=24, bias=bias).to(memory_format=layout)
    image = torch.randn(8, 24, size, size).contiguous(memory_format=layout)
    (reference, native_fn), (ours, fast_fn) = gradients(conv, image, False), gradients(conv, image, True)
    assert fast_fn == "_DepthwiseConvBackward" and native_fn != fast_fn
    for name, a, b in zip(["output", "input grad", "weight grad", "bias grad"], reference, ours):
        assert a.shape == b.shape, name
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5 * a.abs().max().item(), msg=name)


@pytest.mark.parametrize("case", ["large map", "full conv", "grouped not depthwise", "no grad", "frozen weight",
                                  "autocast"])
def test_other_convolutions_keep_the_native_path(case):
    channels, groups, size = (24, 24, 8) if case == "large map" else (24, 1 if case == "full conv" else 6, 2)
    conv = nn.Conv2d(channels, channels, 3, padding=1, groups=groups)
    conv.weight.requires_grad_(case != "frozen weight")
    image = torch.randn(2, channels, size, size, requires_grad=True)
    with (small_map_depthwise_grad(), torch.set_grad_enabled(case != "no grad"),
          torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "autocast")):
        out = conv(image)
    assert out.grad_fn is None if case == "no grad" else out.grad_fn.name() != "_DepthwiseConvBackward"


def test_functional_keyword_call_and_a_training_step_agree():
    """F.conv2d with keyword arguments is routed too, and one SGD step of a small depthwise net moves its
    weights as the native path does (to float32 rounding)."""
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                        nn.Conv2d(16, 16, 5, padding=2, groups=16), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 4))
    images, labels = torch.randn(16, 3, 8, 8), torch.arange(16) % 4
    weights = []
    for fast in (False, True):
        model = __import__("copy").deepcopy(net)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        with small_map_depthwise_grad() if fast else torch.enable_grad():
            loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        weights.append(model[2].weight.detach())
    assert not torch.equal(weights[0], net[2].weight)  # the step moved the weights
    torch.testing.assert_close(weights[1], weights[0], rtol=1e-5, atol=1e-6)
    with small_map_depthwise_grad():
        out = F.conv2d(torch.randn(1, 4, 2, 2), nn.Parameter(torch.randn(4, 1, 3, 3)), padding=1, groups=4)
    assert out.grad_fn.name() == "_DepthwiseConvBackward"
