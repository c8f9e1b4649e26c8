"""Finite scalar quantization (Mentzer et al. 2023): each channel is bounded and rounded to one of
``levels[i]`` values, so the implicit codebook is the product grid with ``prod(levels)`` codes,
never collapses and needs no loss.

Per channel with ``L`` levels: ``half = (L - 1) * (1 + eps) / 2``, ``offset = 0.5`` for even ``L``,
``bounded = tanh(z + atanh(offset / half)) * half - offset``, ``q = round(bounded)`` (straight
through), and the output is ``q / (L // 2)`` in [-1, 1].  The index is the mixed-radix number of the
digits ``q + L // 2`` with the first channel least significant (as in the paper's code).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from pydantic import Field, field_validator
from torch import Tensor, nn

from vq_core.config import StrictConfig
from vq_core.quantizers.layout import codes_to_layout, flatten_channels, full_precision, restore_channels, restore_indices


class FSQConfig(StrictConfig):
    """Levels per channel: [8, 8, 5, 5, 5] = 8000 codes, [8, 8, 8, 5, 5, 5] = 64000 codes."""

    levels: tuple[int, ...] = Field(min_length=1)
    eps: float = Field(default=1e-3, ge=0, lt=1)

    @field_validator("levels")
    @classmethod
    def _at_least_two(cls, levels: tuple[int, ...]) -> tuple[int, ...]:
        if any(level < 2 for level in levels):
            raise ValueError(f"every FSQ level must be >= 2, got {levels}")
        return levels


class FSQ(nn.Module):
    """``quantize(z) -> (z_q, indices, aux)`` over the channel dim (= ``len(levels)``); no parameters."""

    def __init__(self, config: FSQConfig) -> None:
        super().__init__()
        self.config = config
        levels = torch.tensor(config.levels, dtype=torch.int64)
        self.register_buffer("levels", levels, persistent=False)
        basis = torch.cumprod(torch.tensor((1, *config.levels[:-1]), dtype=torch.int64), dim=0)
        self.register_buffer("basis", basis, persistent=False)

    @property
    def dim(self) -> int:
        return len(self.config.levels)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.config.levels)

    def bound(self, z: Tensor) -> Tensor:
        """Squash each channel into (-L/2, L/2) so that rounding yields exactly L values."""
        levels = self.levels.to(z.dtype)
        half = (levels - 1) * (1 + self.config.eps) / 2
        offset = torch.where(self.levels % 2 == 0, 0.5, 0.0).to(z.dtype)
        shift = torch.atanh(offset / half)
        return torch.tanh(z + shift) * half - offset

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """(B, len(levels), ...) or (N, len(levels)) -> (z_q in [-1, 1], indices int64, aux with zero loss)."""
        flat, lead = flatten_channels(z, self.dim)
        with full_precision(z):
            bounded = self.bound(flat.float())
            rounded = bounded + (torch.round(bounded) - bounded).detach()
            half_width = (self.levels // 2).to(rounded.dtype)
            out = rounded / half_width
            indices = self.codes_to_indices(out.detach())
        aux = {"loss": out.new_zeros(())}
        return restore_channels(out.to(z.dtype), lead), restore_indices(indices, lead), aux

    def codes_to_indices(self, codes: Tensor) -> Tensor:
        """Normalised codes (N, dim) in [-1, 1] -> mixed-radix indices (N,)."""
        half_width = self.levels // 2
        digits = torch.round(codes * half_width).long() + half_width
        return (digits * self.basis).sum(dim=-1)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices (...) -> normalised codes (..., dim)."""
        digits = (indices.long()[..., None] // self.basis) % self.levels
        half_width = self.levels // 2
        return ((digits - half_width).float() / half_width.float())

    def dequantize(self, indices: Tensor) -> Tensor:
        # FSQ.indices_to_codes, not self's: the vqpt face overrides it with its own layout
        return codes_to_layout(FSQ.indices_to_codes(self, indices.reshape(-1)), indices.shape)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        return self.quantize(z)
