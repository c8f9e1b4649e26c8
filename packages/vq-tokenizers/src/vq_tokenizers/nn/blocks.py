"""Building blocks of the taming-transformers style conv autoencoder.

Same maths as taming's ``ResnetBlock``/``AttnBlock``/``Downsample``/``Upsample`` (GroupNorm(32, eps 1e-6),
swish, asymmetric-pad stride-2 downsampling, nearest upsampling + conv), with two speed choices:
attention uses one fused ``qkv`` 1x1 conv and ``scaled_dot_product_attention`` (flash/memory-efficient
kernels on GPU instead of an explicit HW x HW bmm), and everything works in ``channels_last``.
The converters map foreign checkpoints (separate q/k/v convs) onto these names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORM_GROUPS = 32
NORM_EPS = 1e-6


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm as every published VQGAN uses it (32 groups, eps 1e-6)."""
    if channels % NORM_GROUPS:
        raise ValueError(f"GroupNorm({NORM_GROUPS}) needs channels divisible by {NORM_GROUPS}, got {channels}")
    return nn.GroupNorm(NORM_GROUPS, channels, eps=NORM_EPS, affine=True)


class ResBlock(nn.Module):
    """norm-swish-conv, norm-swish-dropout-conv, plus a (1x1-projected when widths differ) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = group_norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.shortcut(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all spatial positions, residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(b, 3, 1, c, h * w).transpose(-1, -2)  # (b, 3, heads=1, hw, c)
        out = F.scaled_dot_product_attention(qkv[:, 0], qkv[:, 1], qkv[:, 2])  # softmax(q k^T / sqrt(c)) v
        out = out.transpose(-1, -2).reshape(b, c, h, w)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Stride-2 3x3 conv after zero-padding right/bottom by one (taming's asymmetric padding)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour 2x upsampling followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class MidBlock(nn.Module):
    """res - attention - res at the lowest resolution (encoder end / decoder start)."""

    def __init__(self, channels: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.block_1 = ResBlock(channels, channels, dropout)
        self.attn = AttnBlock(channels)
        self.block_2 = ResBlock(channels, channels, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block_2(self.attn(self.block_1(x)))


class Level(nn.Module):
    """One resolution level: ``depth`` res blocks (each optionally followed by attention), then a resample."""

    def __init__(
        self, in_channels: int, out_channels: int, depth: int, *, attention: bool, resample: nn.Module | None, dropout: float
    ) -> None:
        super().__init__()
        widths = [in_channels] + [out_channels] * depth
        self.res = nn.ModuleList(ResBlock(widths[i], widths[i + 1], dropout) for i in range(depth))
        self.attn = nn.ModuleList(AttnBlock(out_channels) for _ in range(depth)) if attention else nn.ModuleList()
        self.resample = resample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.res):
            x = block(x)
            if len(self.attn):
                x = self.attn[i](x)
        return x if self.resample is None else self.resample(x)
