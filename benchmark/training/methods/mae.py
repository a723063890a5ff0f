"""MAE (He et al., CVPR 2022): a ViT encoder sees only the 25% visible patches; a light decoder
fills in mask tokens and predicts the pixels of the masked patches; the loss is the MSE on masked
patches of per-patch normalised pixels. Augmentation is crop and flip only."""

from __future__ import annotations

from typing import ClassVar

from dataclasses import dataclass

import torch
from torch import nn

from benchmark.errors import UserError
from benchmark.params import CheckedParams, Constraints, Boolean, Interval
from benchmark.training import METHODS
from benchmark.training.augment import ViewSpec
from benchmark.training.base import Method, MethodContext


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, L, patch * patch * C), patches in row-major order."""
    n, c, h, w = images.shape
    x = images.reshape(n, c, h // patch, patch, w // patch, patch)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // patch) * (w // patch), patch * patch * c)


def mae_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, norm_pix: bool = True
             ) -> torch.Tensor:
    """Mean squared error over the masked patches (mask 1 = removed), targets normalised per patch."""
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6).sqrt()
    per_patch = (prediction - target).pow(2).mean(-1)
    return (per_patch * mask).sum() / mask.sum()


def check_vit(backbone: nn.Module) -> None:
    if not all(hasattr(backbone, a) for a in ("patch_embed", "blocks", "pos_embed", "cls_token")):
        raise UserError("mae needs a ViT backbone with a class token, e.g. --arch vit_tiny_patch16_224")
    if backbone.num_prefix_tokens != 1 or getattr(backbone, "no_embed_class", False):
        raise UserError("mae supports ViTs with one class token whose position embedding includes it")


@METHODS.register
class MAE(Method):
    name = "mae"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        mask_ratio: float = 0.75
        decoder_dim: int = 128
        decoder_depth: int = 2
        decoder_heads: int = 4
        norm_pix_loss: bool = True
        constraints: ClassVar[Constraints] = {
            "mask_ratio": Interval(float, 0, 1, open_low=True), "decoder_dim": Interval(int, 1),
            "decoder_depth": Interval(int, 1), "decoder_heads": Interval(int, 1), "norm_pix_loss": Boolean()}

    def __init__(self, backbone: nn.Module, context: MethodContext, **params):
        from timm.models.vision_transformer import Block

        super().__init__(backbone, context, **params)
        check_vit(backbone)
        p, width = self.params, backbone.embed_dim
        self.patch = backbone.patch_embed.patch_size[0]
        patches = backbone.patch_embed.num_patches
        self.decoder_embed = nn.Linear(width, p.decoder_dim)
        self.mask_token = nn.Parameter(torch.randn(1, 1, p.decoder_dim) * 0.02)
        self.decoder_pos = nn.Parameter(torch.randn(1, patches + 1, p.decoder_dim) * 0.02)
        self.decoder = nn.Sequential(*[Block(p.decoder_dim, p.decoder_heads, qkv_bias=True)
                                       for _ in range(p.decoder_depth)], nn.LayerNorm(p.decoder_dim))
        self.predict = nn.Linear(p.decoder_dim, self.patch * self.patch * 3)

    def view_specs(self) -> list[ViewSpec]:
        return [ViewSpec(self.context.input_size, scale=(0.2, 1.0))]

    def views(self, images: torch.Tensor, generator: torch.Generator) -> list[torch.Tensor]:
        (view,) = super().views(images, generator)
        return [view, torch.rand(len(view), self.backbone.patch_embed.num_patches, generator=generator)]

    def loss(self, views: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
        images, noise = views
        latent, mask, restore = self.encode_visible(images, noise)
        return mae_loss(self.decode(latent, restore), patchify(images, self.patch), mask, self.params.norm_pix_loss)

    def encode_visible(self, images: torch.Tensor, noise: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode a random (1 - mask_ratio) of the patches: (latent with class token, mask, restore order)."""
        vit = self.backbone
        tokens = vit.patch_embed(images)
        tokens = tokens.flatten(1, 2) if tokens.ndim == 4 else tokens  # NHWC when dynamic_img_size
        tokens = tokens + vit.pos_embed[:, 1:]
        n, length, width = tokens.shape
        keep = max(1, int(length * (1 - self.params.mask_ratio)))
        shuffle = noise.argsort(1)  # patches with the smallest noise stay visible
        restore = shuffle.argsort(1)
        visible = tokens.gather(1, shuffle[:, :keep, None].expand(-1, -1, width))
        mask = torch.ones(n, length, device=tokens.device)
        mask[:, :keep] = 0
        mask = mask.gather(1, restore)
        cls = (vit.cls_token + vit.pos_embed[:, :1]).expand(n, -1, -1)
        latent = vit.norm(vit.blocks(vit.norm_pre(torch.cat([cls, visible], dim=1))))
        return latent, mask, restore

    def decode(self, latent: torch.Tensor, restore: torch.Tensor) -> torch.Tensor:
        x = self.decoder_embed(latent)
        n, visible, width = x.shape
        filler = self.mask_token.expand(n, restore.shape[1] + 1 - visible, -1)
        patches = torch.cat([x[:, 1:], filler], dim=1).gather(1, restore[..., None].expand(-1, -1, width))
        x = self.decoder(torch.cat([x[:, :1], patches], dim=1) + self.decoder_pos)
        return self.predict(x[:, 1:])
