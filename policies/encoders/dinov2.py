"""DINOv2 ViT with the official ``dinov2_vits14`` state-dict layout, and the SPOC pooled-feature wrapper.

Behaviour follows facebookresearch/dinov2 (``DinoVisionTransformer.forward_features``): the 37x37 pretraining
position table is bicubically rescaled to the input's patch grid with DINOv2's +0.1 offset, blocks are
pre-norm with LayerScale, and ``x_norm_patchtokens`` are the final-LayerNorm patch tokens. SafeVLA crops 3
columns on each side (224x384 -> 224x378 = 16x27 patches) and average-pools the grid to 7x12.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from policies.configuration_safevla import ImageEncoderConfig

__all__ = ["DinoVisionTransformer", "PooledDinoFeatures"]


class _PatchEmbed(nn.Module):
    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class _Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class _LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), 1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    def __init__(self, cfg: ImageEncoderConfig) -> None:
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.attn = _Attention(dim, cfg.num_heads)
        self.ls1 = _LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        self.mlp = _Mlp(dim, int(dim * cfg.mlp_ratio))
        self.ls2 = _LayerScale(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class DinoVisionTransformer(nn.Module):
    """DINOv2 backbone; ``state_dict()`` keys equal the official ``dinov2_vits14_pretrain.pth``."""

    def __init__(self, cfg: ImageEncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.pos_grid * cfg.pos_grid + 1, dim))
        self.mask_token = nn.Parameter(torch.zeros(1, dim))  # used only by DINOv2 pretraining; kept for the keys
        self.patch_embed = _PatchEmbed(cfg.patch_size, dim)
        self.blocks = nn.ModuleList(_Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(dim, eps=cfg.layer_norm_eps)
        nn.init.normal_(self.pos_embed, std=0.02)

    def _position_table(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        grid = self.cfg.pos_grid
        if rows == cols == grid:
            return self.pos_embed.to(dtype)
        table = self.pos_embed.float()
        patch_table = table[:, 1:].reshape(1, grid, grid, -1).permute(0, 3, 1, 2)
        offset = self.cfg.interpolate_offset
        scale = ((rows + offset) / math.sqrt(grid * grid), (cols + offset) / math.sqrt(grid * grid))
        patch_table = F.interpolate(patch_table, scale_factor=scale, mode="bicubic", antialias=False)
        if patch_table.shape[-2:] != (rows, cols):
            raise ValueError(f"position table rescaled to {tuple(patch_table.shape[-2:])}, expected {(rows, cols)}")
        patch_table = patch_table.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)
        return torch.cat((table[:, :1], patch_table), dim=1).to(dtype)

    def forward_features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Images (B,3,H,W), normalised, H and W multiples of the patch size -> DINOv2's feature dict."""
        _, _, height, width = images.shape
        patch = self.cfg.patch_size
        x = self.patch_embed(images)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1).to(x.dtype), x), dim=1)
        x = x + self._position_table(height // patch, width // patch, x.dtype)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return {"x_norm_clstoken": x[:, 0], "x_norm_patchtokens": x[:, 1:]}


class PooledDinoFeatures(nn.Module):
    """SPOC's DinoViTEmbedder: crop the sides, ViT patch tokens -> (B, C, rows, cols) pooled grid."""

    def __init__(self, cfg: ImageEncoderConfig, pooled_grid: tuple[int, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = DinoVisionTransformer(cfg)
        self.pool = nn.AdaptiveAvgPool2d(pooled_grid)

    def forward(self, images_bchw: torch.Tensor) -> torch.Tensor:
        """Normalised images (B,3,image_height,image_width) -> pooled features (B, embed_dim, rows, cols)."""
        expected = (self.cfg.image_height, self.cfg.image_width)
        if tuple(images_bchw.shape[-2:]) != expected:
            raise ValueError(f"expected images of {expected} (H, W), got {tuple(images_bchw.shape[-2:])}")
        crop = self.cfg.crop_width
        cropped = images_bchw[..., crop:images_bchw.shape[-1] - crop] if crop else images_bchw
        tokens = self.model.forward_features(cropped)["x_norm_patchtokens"]
        rows, cols = self.cfg.patch_grid
        grid = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], rows, cols)
        return self.pool(grid)
