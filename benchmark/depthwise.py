"""A depthwise convolution's weight gradient on small feature maps, without oneDNN's slow path.

On a CPU without AVX-512, oneDNN computes a depthwise convolution's weight gradient with one small GEMM
per channel (`x64:gemm:jit`) when the output map is small: EfficientNet's last stages at 64 px (2x2 and
4x4 maps, 5x5 kernels) took 17-29 ms per convolution on an AMD EPYC with AVX2 for a batch of 32, over half
of a fine-tuning step. Inside `small_map_depthwise_grad()`, such a convolution computes that gradient as
k*k multiply-sums over the batch instead (2-7 ms); its input gradient and its output are oneDNN's own.
The gradient is the same sum in another order (float32 rounding apart); larger maps keep oneDNN's
kernel, which is faster there. `perf/finetune_step.py` measures both side by side.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable
from torch.overrides import TorchFunctionMode

SMALL_MAP = 16  # output maps of at most this many pixels (4x4) take the multiply-sum path


def _pair(value: int | tuple[int, ...] | list[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class Geometry:
    """A convolution's stride, padding and dilation, each as (height, width)."""

    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]

    def output_pixels(self, image: torch.Tensor, weight: torch.Tensor) -> int:
        sizes = [(image.shape[2 + d] + 2 * self.padding[d] - self.dilation[d] * (weight.shape[2 + d] - 1) - 1)
                 // self.stride[d] + 1 for d in range(2)]
        return sizes[0] * sizes[1]


class _DepthwiseConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, image, weight, bias, geometry: Geometry):  # noqa: ANN001 (autograd's signature)
        ctx.save_for_backward(image, weight)
        ctx.geometry, ctx.has_bias = geometry, bias is not None
        return F.conv2d(image, weight, bias, geometry.stride, geometry.padding, geometry.dilation, image.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):  # noqa: ANN001
        image, weight = ctx.saved_tensors
        g = ctx.geometry
        grad_image = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_image = torch.ops.aten.convolution_backward(
                grad_out, image, weight, None, g.stride, g.padding, g.dilation, False, [0, 0], image.shape[1],
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_weight = depthwise_weight_grad(image, grad_out, weight.shape, g)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad_out.sum((0, 2, 3))
        return grad_image, grad_weight, grad_bias, None


def depthwise_weight_grad(image: torch.Tensor, grad_out: torch.Tensor, weight_shape: torch.Size,
                          geometry: Geometry) -> torch.Tensor:
    """d loss / d weight of a depthwise conv: for each kernel tap, the sum over batch and output pixels of
    the output gradient times the input pixels that tap saw."""
    (sh, sw), (ph, pw), (dh, dw) = geometry.stride, geometry.padding, geometry.dilation
    out_h, out_w = grad_out.shape[2], grad_out.shape[3]
    padded = F.pad(image, (pw, pw, ph, ph)) if ph or pw else image
    grad = torch.empty(weight_shape[0], weight_shape[2], weight_shape[3], dtype=grad_out.dtype,
                       device=grad_out.device)
    for i in range(weight_shape[2]):
        for j in range(weight_shape[3]):
            seen = padded[:, :, i * dh: i * dh + sh * (out_h - 1) + 1: sh, j * dw: j * dw + sw * (out_w - 1) + 1: sw]
            grad[:, i, j] = (seen * grad_out).sum((0, 2, 3))
    return grad.unsqueeze(1)


_CONV2D_ARGS = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")


class _SmallMapDepthwise(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        if func is torch.conv2d or func is F.conv2d:
            call = {**dict(zip(_CONV2D_ARGS, args)), **kwargs}
            geometry = _small_map_geometry(call)
            if geometry is not None:
                return _DepthwiseConv.apply(call["input"], call["weight"], call.get("bias"), geometry)
        return func(*args, **kwargs)


def _small_map_geometry(call: dict) -> Geometry | None:
    """The geometry of a CPU depthwise conv on a small map that needs a weight gradient, else None (also
    under autocast, whose casts the function's backward would not mirror)."""
    image, weight, padding = call["input"], call["weight"], call.get("padding", 0)
    groups = call.get("groups", 1)
    if (isinstance(padding, str) or image.device.type != "cpu" or not torch.is_grad_enabled()
            or torch.is_autocast_enabled("cpu") or image.dtype != weight.dtype
            or not weight.requires_grad or image.dim() != 4 or groups == 1
            or not groups == image.shape[1] == weight.shape[0] or weight.shape[1] != 1):
        return None
    geometry = Geometry(_pair(call.get("stride", 1)), _pair(padding), _pair(call.get("dilation", 1)))
    return geometry if geometry.output_pixels(image, weight) <= SMALL_MAP else None


@contextmanager
def small_map_depthwise_grad(device: str | torch.device = "cpu") -> Iterator[None]:
    """Within it, CPU depthwise convolutions on small maps take the multiply-sum weight gradient (a no-op on
    other devices). Enter it around the forward pass: the backward pass follows the graph it recorded."""
    with _SmallMapDepthwise() if torch.device(device).type == "cpu" else nullcontext():
        yield
