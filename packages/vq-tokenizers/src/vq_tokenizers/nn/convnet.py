"""The VQGAN encoder and decoder conv nets (taming-transformers layout).

Encoder: conv_in -> one :class:`Level` per ``ch_mult`` entry (``num_res_blocks`` res blocks, attention at
the resolutions in ``attn_resolutions``, downsample except after the last) -> mid (res-attn-res) ->
GroupNorm-swish-conv_out to ``z_channels``.  The decoder mirrors it with ``num_res_blocks + 1`` blocks per
level; its levels are stored in execution order (lowest resolution first), so ``decoder.up[0]`` runs first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vq_tokenizers.nn.blocks import Downsample, Level, MidBlock, Upsample, group_norm


def level_resolutions(resolution: int, num_levels: int) -> list[int]:
    """Spatial size at which each encoder level runs: resolution, resolution/2, ..."""
    return [resolution // 2**i for i in range(num_levels)]


class Encoder(nn.Module):
    def __init__(
        self,
        *,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        attn_resolutions: Sequence[int],
        resolution: int,
        z_channels: int,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        widths = [ch] + [ch * m for m in ch_mult]
        resolutions = level_resolutions(resolution, len(ch_mult))
        last = len(ch_mult) - 1
        self.down = nn.ModuleList(
            Level(
                widths[i],
                widths[i + 1],
                num_res_blocks,
                attention=resolutions[i] in attn_resolutions,
                resample=Downsample(widths[i + 1]) if i != last else None,
                dropout=dropout,
            )
            for i in range(len(ch_mult))
        )
        self.mid = MidBlock(widths[-1], dropout)
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], z_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    def __init__(
        self,
        *,
        ch: int,
        ch_mult: Sequence[int],
        num_res_blocks: int,
        attn_resolutions: Sequence[int],
        resolution: int,
        z_channels: int,
        out_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        widths = [ch * m for m in reversed(ch_mult)]  # execution order: lowest resolution first
        resolutions = list(reversed(level_resolutions(resolution, len(ch_mult))))
        self.conv_in = nn.Conv2d(z_channels, widths[0], 3, padding=1)
        self.mid = MidBlock(widths[0], dropout)
        last = len(ch_mult) - 1
        self.up = nn.ModuleList(
            Level(
                widths[max(i - 1, 0)],
                widths[i],
                num_res_blocks + 1,
                attention=resolutions[i] in attn_resolutions,
                resample=Upsample(widths[i]) if i != last else None,
                dropout=dropout,
            )
            for i in range(len(ch_mult))
        )
        self.norm_out = group_norm(widths[-1])
        self.conv_out = nn.Conv2d(widths[-1], out_channels, 3, padding=1)

    @property
    def last_layer(self) -> nn.Parameter:
        """The weight the adaptive GAN weight balances gradients at."""
        return self.conv_out.weight

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.conv_in(z))
        for level in self.up:
            h = level(h)
        return self.conv_out(F.silu(self.norm_out(h)))
