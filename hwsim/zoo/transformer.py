"""A DeiT-tiny-like vision transformer (Touvron et al., ICML 2021): patch 16, dim 192, depth 12, 3 heads.

Attention is either ``F.scaled_dot_product_attention`` (default) or explicit ``q @ k^T`` / ``p @ v``
matmuls (``attention="matmul"``); both lower to two MATMUL layers around a SOFTMAX.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from hwsim.zoo._blocks import init_weights


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, mode: str) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"vit_tiny: dim={dim} is not divisible by heads={heads}")
        if mode not in ("sdpa", "matmul"):
            raise ValueError(f"vit_tiny: attention must be 'sdpa' or 'matmul', got {mode!r}")
        self.heads, self.mode = heads, mode
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        if self.mode == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int, mode: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, mode)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class VisionTransformer(nn.Module):
    def __init__(self, *, img_size: int = 224, patch_size: int = 16, dim: int = 192, depth: int = 12,
                 heads: int = 3, mlp_ratio: int = 4, num_classes: int = 1000, attention: str = "sdpa") -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"vit_tiny: img_size={img_size} is not a multiple of patch_size={patch_size}")
        tokens = (img_size // patch_size) ** 2 + 1
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio, attention) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        init_weights(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


def vit_tiny(*, img_size: int = 224, patch_size: int = 16, dim: int = 192, depth: int = 12, heads: int = 3,
             mlp_ratio: int = 4, num_classes: int = 1000, attention: str = "sdpa") -> VisionTransformer:
    """DeiT-tiny-like ViT; shrink ``img_size``/``depth`` for quick experiments."""
    return VisionTransformer(img_size=img_size, patch_size=patch_size, dim=dim, depth=depth, heads=heads,
                             mlp_ratio=mlp_ratio, num_classes=num_classes, attention=attention)
