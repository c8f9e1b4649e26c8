"""Lookup-free quantization (MAGVIT-v2, Yu et al. 2023): each channel is quantized to its sign, so a
``dim``-channel vector is a ``dim``-bit code (``2**dim`` codes) with no codebook to search.

The entropy penalty of MAGVIT-v2 (low per-sample entropy, high codebook entropy) is computed here
per bit: with ``p_i = sigmoid(4 z_i)`` the probability of bit ``i`` being one, the per-sample term is
the mean binary entropy of the bits and the codebook term the binary entropy of their batch mean.
This factorised form is exact when bits are independent and costs O(N x dim) instead of
O(N x 2**dim), so it also works for 18-bit (262144-code) LFQ.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from vq_core.config import StrictConfig
from vq_core.quantizers.layout import codes_to_layout, flatten_channels, full_precision, restore_channels, restore_indices


class LFQConfig(StrictConfig):
    dim: int = Field(gt=0, le=62, description="bits per code; codebook size is 2**dim")
    beta: float = Field(default=0.25, ge=0, description="commitment loss weight")
    entropy_weight: float = Field(default=0.1, ge=0)
    diversity_gamma: float = Field(default=1.0, ge=0, description="weight of the codebook-entropy term")


def _binary_entropy(p: Tensor) -> Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return -(p * p.log() + (1 - p) * (1 - p).log())


class LFQ(nn.Module):
    def __init__(self, config: LFQConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("bits", 2 ** torch.arange(config.dim, dtype=torch.int64), persistent=False)

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def codebook_size(self) -> int:
        return 2**self.config.dim

    def quantize(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        flat, lead = flatten_channels(z, self.dim)
        with full_precision(z):
            x = flat.float()
            q = torch.where(x > 0, 1.0, -1.0)
            out = x + (q - x).detach()
            indices = ((q > 0).long() * self.bits).sum(dim=1)
            commit = torch.mean((x - q) ** 2)
            p = torch.sigmoid(4 * x)
            sample_entropy = _binary_entropy(p).mean()
            codebook_entropy = _binary_entropy(p.mean(dim=0)).mean()
            entropy_loss = sample_entropy - self.config.diversity_gamma * codebook_entropy
            loss = self.config.beta * commit + self.config.entropy_weight * entropy_loss
        aux = {"loss": loss, "commit_loss": commit.detach(), "entropy_loss": entropy_loss.detach()}
        return restore_channels(out.to(z.dtype), lead), restore_indices(indices, lead), aux

    def dequantize(self, indices: Tensor) -> Tensor:
        flat = indices.reshape(-1).long()
        codes = torch.where((flat[:, None] & self.bits) > 0, 1.0, -1.0)
        return codes_to_layout(codes, indices.shape)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, dict[str, Any]]:
        return self.quantize(z)
