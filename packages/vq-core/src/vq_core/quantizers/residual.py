"""Residual VQ (SoundStream / RQ-VAE): ``depth`` vector quantizers in a row, each quantizing what the
previous ones left; the output is the sum of the chosen codes and indices gain a trailing depth axis.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import Tensor, nn

from vq_core.config import StrictConfig
from vq_core.quantizers.vector import VectorQuantizer, VectorQuantizerConfig


class ResidualVQConfig(StrictConfig):
    quantizer: VectorQuantizerConfig
    depth: int = Field(gt=0, description="number of residual stages")


class ResidualVQ(nn.Module):
    def __init__(self, config: ResidualVQConfig) -> None:
        super().__init__()
        self.config = config
        self.stages = nn.ModuleList(VectorQuantizer(config.quantizer) for _ in range(config.depth))

    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    def quantize(
        self, z: Tensor, *, mask: Tensor | None = None, freeze_codebook: bool | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Indices have shape ``(*index shape of one stage, depth)``; ``aux["loss"]`` sums the stages,
        ``aux["stage_losses"]`` (depth,) holds each. ``mask``/``freeze_codebook`` go to every stage."""
        residual, total = z, torch.zeros_like(z)
        all_indices, losses = [], []
        for stage in self.stages:
            quantized, indices, aux = stage.quantize(residual, mask=mask, freeze_codebook=freeze_codebook)
            residual = residual - quantized.detach()
            total = total + quantized
            all_indices.append(indices)
            losses.append(aux["loss"])
        stage_losses = torch.stack(losses)
        return total, torch.stack(all_indices, dim=-1), {"loss": stage_losses.sum(), "stage_losses": stage_losses}

    def dequantize(self, indices: Tensor) -> Tensor:
        return sum(stage.dequantize(indices[..., i]) for i, stage in enumerate(self.stages))

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices (..., depth) -> summed output-space codes (..., dim), channel last."""
        return sum(stage.indices_to_codes(indices[..., i]) for i, stage in enumerate(self.stages))

    def forward(
        self, z: Tensor, *, mask: Tensor | None = None, freeze_codebook: bool | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        return self.quantize(z, mask=mask, freeze_codebook=freeze_codebook)
