"""Lookup-free quantization (MAGVIT-v2, Yu et al. 2023): each channel is quantized to its sign, so a
``dim``-channel vector is a ``dim``-bit code (``2**dim`` codes) with no codebook to search.

The entropy penalty of MAGVIT-v2 (low per-sample entropy, high codebook entropy) is computed here
per bit: with ``p_i = sigmoid(4 z_i)`` the probability of bit ``i`` being one, the per-sample term is
the mean binary entropy of the bits and the codebook term the binary entropy of their batch mean.
This factorised form is exact when bits are independent and costs O(N x dim) instead of
O(N x 2**dim), so it also works for 18-bit (262144-code) LFQ.  ``inv_temperature`` sharpens the bit
probabilities (``p_i = sigmoid(4 * inv_temperature * z_i)``; vector-quantize-pytorch uses 100).

``bit_order`` says which bit of the index channel 0 is: ``lsb_first`` (channel ``i`` is bit ``2**i``,
the default) or ``msb_first`` (channel 0 is the highest bit, as vector-quantize-pytorch numbers codes).
A ``mask`` (True = real position, shaped like the indices) leaves padding out of both losses.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import Tensor, nn

from vq_core.quantizers.layout import (
    codes_to_layout,
    flatten_channels,
    flatten_mask,
    full_precision,
    masked_mse,
    restore_channels,
    restore_indices,
)
from vq_core.quantizers.stable_hash import ExtensibleConfig


class LFQConfig(ExtensibleConfig):
    added_fields = ("inv_temperature", "bit_order")

    dim: int = Field(gt=0, le=62, description="bits per code; codebook size is 2**dim")
    beta: float = Field(default=0.25, ge=0, description="commitment loss weight")
    entropy_weight: float = Field(default=0.1, ge=0)
    diversity_gamma: float = Field(default=1.0, ge=0, description="weight of the codebook-entropy term")
    inv_temperature: float = Field(default=1.0, gt=0, description="sharpness of the bit probabilities in the entropy terms")
    bit_order: Literal["lsb_first", "msb_first"] = Field(default="lsb_first", description="which index bit channel 0 is")


def _binary_entropy(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


class LFQ(nn.Module):
    def __init__(self, config: LFQConfig) -> None:
        super().__init__()
        self.config = config
        bits = 2 ** torch.arange(config.dim, dtype=torch.int64)
        self.register_buffer("bits", bits.flip(0) if config.bit_order == "msb_first" else bits, persistent=False)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def codebook_size(self) -> int:
        return 2**self.config.dim

    def quantize(
        self, z: Tensor, *, mask: Tensor | None = None, inv_temperature: float | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Sign codes of (B, dim, ...) or (N, dim) input; ``aux["loss"]`` = beta * commit + entropy_weight * entropy."""
        cfg = self.config
        flat, lead = flatten_channels(z, self.dim)
        weight = None if mask is None else flatten_mask(mask, lead).float()
        tau = cfg.inv_temperature if inv_temperature is None else inv_temperature
        with full_precision(z):
            x = flat.float()
            q = torch.where(x > 0, 1.0, -1.0)
            out = x + (q - x).detach()
            indices = ((q > 0).long() * self.bits).sum(dim=1)
            commit = masked_mse(x, q, weight)
            p = torch.sigmoid(4 * tau * x)
            if weight is None:
                sample_entropy = _binary_entropy(p).mean()
                mean_p = p.mean(dim=0)
            else:
                total = weight.sum().clamp(min=1)
                sample_entropy = (_binary_entropy(p).mean(dim=1) * weight).sum() / total
                mean_p = (p * weight[:, None]).sum(dim=0) / total
            codebook_entropy = _binary_entropy(mean_p).mean()
            entropy_loss = sample_entropy - cfg.diversity_gamma * codebook_entropy
            loss = cfg.beta * commit + cfg.entropy_weight * entropy_loss
        aux = {"loss": loss, "commit_loss": commit.detach(), "entropy_loss": entropy_loss.detach()}
        return restore_channels(out.to(z.dtype), lead), restore_indices(indices, lead), aux

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices (...) -> sign codes (..., dim) in {-1, 1}, channel last."""
        return torch.where((indices.long()[..., None] & self.bits) > 0, 1.0, -1.0)

    def dequantize(self, indices: Tensor) -> Tensor:
        # LFQ.indices_to_codes, not self's: the vqpt face overrides it with its own layout
        return codes_to_layout(LFQ.indices_to_codes(self, indices.reshape(-1)), indices.shape)

    def forward(
        self, z: Tensor, *, mask: Tensor | None = None, inv_temperature: float | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        return self.quantize(z, mask=mask, inv_temperature=inv_temperature)
