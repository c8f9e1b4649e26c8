"""Vision-transformer blocks of the VQ-KD encoder and decoder (BEiT layout, pre-norm).

A :class:`ViT` maps a (B, C, H, W) input to patch tokens (B, N, dim): a patch-embedding conv, an
optional class token (it takes part in attention but is dropped from the output), absolute position
embeddings, ``depth`` pre-norm blocks and a final LayerNorm over the patch tokens.  The VQ-KD decoder
is the same module run over the quantized code map with ``patch_size=1``.

Attention uses one fused ``qkv`` projection with a full bias.  BEiT keeps separate ``q_bias`` and
``v_bias`` and no key bias; a key bias adds ``q . b_k`` to every logit of a query row, which softmax
ignores, so the fused form computes the same function and BEiT weights load into it exactly
(``converters/beit.py``).  ``layer_scale > 0`` adds BEiT's per-channel residual gains.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from vq_core import StrictConfig


class ViTConfig(StrictConfig):
    """Shape of one transformer stack; ``image_size`` is the input side (the token grid for a decoder)."""

    image_size: int = Field(default=224, gt=0)
    patch_size: int = Field(default=16, gt=0)
    in_channels: int = Field(default=3, gt=0)
    dim: int = Field(default=768, gt=0)
    depth: int = Field(default=12, ge=0)
    heads: int = Field(default=12, gt=0)
    mlp_ratio: float = Field(default=4.0, gt=0)
    layer_scale: float = Field(default=0.0, ge=0, description="BEiT init_values for per-channel residual gains; 0: none")
    cls_token: bool = Field(default=True, description="prepend a learned class token (not part of the output)")
    norm_eps: float = Field(default=1e-6, gt=0)

    @property
    def grid(self) -> tuple[int, int]:
        side = self.image_size // self.patch_size
        return (side, side)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @model_validator(mode="after")
    def _consistent(self) -> ViTConfig:
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not divisible by patch_size {self.patch_size}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")
        return self


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: ``x + g1 * attn(norm1(x))``, then ``x + g2 * mlp(norm2(x))``."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        dim = config.dim
        self.norm1 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.attn = Attention(dim, config.heads)
        self.norm2 = nn.LayerNorm(dim, eps=config.norm_eps)
        self.mlp = MLP(dim, int(dim * config.mlp_ratio))
        if config.layer_scale > 0:
            self.gamma1 = nn.Parameter(torch.full((dim,), config.layer_scale))
            self.gamma2 = nn.Parameter(torch.full((dim,), config.layer_scale))
        else:
            self.gamma1 = self.gamma2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.attn(self.norm1(x))
        x = x + (a if self.gamma1 is None else self.gamma1 * a)
        m = self.mlp(self.norm2(x))
        return x + (m if self.gamma2 is None else self.gamma2 * m)


class ViT(nn.Module):
    """(B, in_channels, S, S) -> normalised patch tokens (B, (S/patch)^2, dim)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.patch_embed = nn.Conv2d(config.in_channels, config.dim, config.patch_size, stride=config.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.dim)) if config.cls_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + int(config.cls_token), config.dim))
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.depth))
        self.norm = nn.LayerNorm(config.dim, eps=config.norm_eps)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """BEiT's initialisation: truncated normal (std 0.02) weights, zero biases, and each block's
        output projections scaled by ``1/sqrt(2 * layer)`` so the residual stream does not grow with depth."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for layer, block in enumerate(self.blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        expected = (self.config.in_channels, self.config.image_size, self.config.image_size)
        if tuple(x.shape[1:]) != expected:
            raise ValueError(f"ViT expects inputs (B, {expected[0]}, {expected[1]}, {expected[2]}), got {tuple(x.shape)}")
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.pos_embed
        for block in self.blocks:
            tokens = block(tokens)
        if self.cls_token is not None:
            tokens = tokens[:, 1:]
        return self.norm(tokens)


class TaskHead(nn.Sequential):
    """Linear -> tanh -> linear: VQ-KD's projection between a transformer width and the code/target width."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, out_dim))
        for module in self:
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
