"""Vision-transformer blocks of the VQ-KD encoder and decoder (BEiT layout, pre-norm).

A :class:`ViT` maps a (B, C, H, W) input to patch tokens (B, N, dim): a patch-embedding conv, an
optional class token (it takes part in attention but is dropped from the output), absolute position
embeddings, ``depth`` pre-norm blocks and a final LayerNorm over the patch tokens.  The VQ-KD decoder
is the same module run over the quantized code map with ``patch_size=1``.

Attention is BEiT's: one ``qkv`` projection without bias plus separate ``q_bias`` and ``v_bias`` (no
key bias: it would add ``q . b_k`` to every logit of a query row, which softmax ignores, so BEiT leaves
it out), so BEiT v2 weights load by name (``converters/beit.py``).  ``layer_scale > 0`` adds BEiT's
per-channel residual gains.

**Other input sizes.**  Any input whose sides are multiples of ``patch_size`` is accepted: the patch
position embeddings are resampled to the input's grid by :func:`interpolate_pos_embed`, BEiT v2's and
the seed's call (bicubic, ``align_corners=False``, no antialiasing, a scale factor of ``(grid + 0.1) /
trained grid`` - DINO's guard against rounding - and the class token's embedding kept apart).  That is
how a VQ-KD trained at 224 px (14x14) tokenizes 256 px images into 16x16 tokens, as the seed does
downstream.
"""

from __future__ import annotations

import math
from typing import Any

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


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], *, cls_token: bool) -> torch.Tensor:
    """Position embeddings (1, [1 +] S*S, D) of a square S x S grid -> (1, [1 +] h*w, D) for ``grid`` (h, w).

    BEiT v2 ``VisionTransformer.interpolate_pos_encoding`` (and the seed's VQ-KD): the patch part is
    resampled bicubically with ``scale_factor = (h + 0.1) / S, (w + 0.1) / S`` (so the kernel's source
    coordinates are those of that scale, not of ``size=(h, w)``), ``align_corners=False``, without
    antialiasing; the class token's embedding is kept as it is.  Identity when ``grid`` is (S, S).
    """
    cls_part, patches = (pos_embed[:, :1], pos_embed[:, 1:]) if cls_token else (pos_embed[:, :0], pos_embed)
    side = math.isqrt(patches.shape[1])
    if side * side != patches.shape[1]:
        raise ValueError(f"position embeddings hold {patches.shape[1]} patch positions, not a square grid")
    if tuple(grid) == (side, side):
        return pos_embed
    dim = patches.shape[-1]
    square = patches.reshape(1, side, side, dim).permute(0, 3, 1, 2)
    resized = F.interpolate(
        square.float(), scale_factor=((grid[0] + 0.1) / side, (grid[1] + 0.1) / side), mode="bicubic", align_corners=False
    ).to(patches.dtype)
    if tuple(resized.shape[-2:]) != tuple(grid):  # the +0.1 guard makes this impossible; keep the check cheap
        raise AssertionError(f"interpolated grid {tuple(resized.shape[-2:])} != {tuple(grid)}")
    return torch.cat([cls_part, resized.permute(0, 2, 3, 1).reshape(1, grid[0] * grid[1], dim)], dim=1)


class Attention(nn.Module):
    """BEiT attention: ``qkv`` without bias, learned ``q_bias`` and ``v_bias``, no key bias."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim))
        self.v_bias = nn.Parameter(torch.zeros(dim))
        self.proj = nn.Linear(dim, dim)

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        """Checkpoints written before the key bias was dropped hold one fused ``qkv.bias``: its query and
        value parts become ``q_bias``/``v_bias``, its key part is dropped (it never changed attention)."""
        fused = state_dict.pop(f"{prefix}qkv.bias", None)
        if fused is not None and f"{prefix}q_bias" not in state_dict:
            q_bias, _, v_bias = fused.chunk(3)
            state_dict[f"{prefix}q_bias"], state_dict[f"{prefix}v_bias"] = q_bias, v_bias
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)
        q, k, v = qkv.view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
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
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, Attention):
                nn.init.zeros_(module.q_bias)
                nn.init.zeros_(module.v_bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for layer, block in enumerate(self.blocks, start=1):
            block.attn.proj.weight.div_(math.sqrt(2.0 * layer))
            block.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """Patch grid of an input of this size (sides must be multiples of ``patch_size``)."""
        patch = self.config.patch_size
        if height % patch or width % patch or height <= 0 or width <= 0:
            raise ValueError(f"ViT input {height}x{width} is not a multiple of the patch size {patch}")
        return (height // patch, width // patch)

    def position_embeddings(self, grid: tuple[int, int]) -> torch.Tensor:
        """The (1, [1 +] h*w, dim) position embeddings for a ``grid`` input (interpolated when it is not the trained one)."""
        return interpolate_pos_embed(self.pos_embed, grid, cls_token=self.cls_token is not None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"ViT expects inputs (B, {self.config.in_channels}, H, W), got {tuple(x.shape)}")
        grid = self.grid_for(x.shape[-2], x.shape[-1])
        tokens = self.patch_embed(x).flatten(2).transpose(1, 2)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        tokens = tokens + self.position_embeddings(grid)
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


class ViTPixelDecoder(nn.Module):
    """The seed's ViT pixel decoder (``configs/decoder/vqkd.py``): a VQ-KD-style ViT over the code map
    (patch size 1, class token, positions on ``grid`` interpolated to the input's) and a linear-tanh-linear
    head to ``patch x patch`` RGB pixels per token, laid out as ``b (h w) (p q c) -> b c (h p) (w q)``."""

    def __init__(self, config: ViTConfig, patch: int) -> None:
        super().__init__()
        self.patch = patch
        self.vit = ViT(config)
        self.head = TaskHead(config.dim, 3 * patch * patch)

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight the adaptive GAN weight is measured at (the seed's ``task_layer[-1]``)."""
        return self.head[-1].weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        b, _, h, w = z.shape
        p = self.patch
        pixels = self.head(self.vit(z))  # (B, h*w, p*p*3), channels last as the seed's rearrange reads them
        return pixels.view(b, h, w, p, p, 3).permute(0, 5, 1, 3, 2, 4).reshape(b, 3, h * p, w * p)
