"""VQGAN (Esser et al. 2021): the taming-transformers autoencoder around vq-core's ``VectorQuantizer``: ``quant_conv`` (1x1)
projects the encoder's ``z_channels`` to the codebook dimension, ``post_quant_conv`` back.  A small
codebook dimension (LlamaGen VQ-16: 8, l2-normalised / cosine) therefore costs nothing extra: the 1x1
convs *are* the low-dimensional projection, exactly as LlamaGen lays it out, which keeps its checkpoints
loadable as they are.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from vq_core import VectorQuantizer, VectorQuantizerConfig
from vq_tokenizers.autoencoder import AutoencoderConfig, ConvVQTokenizer
from vq_tokenizers.base import register_tokenizer


class VQGANConfig(AutoencoderConfig):
    """Autoencoder shape plus the vector quantizer (whose ``dim`` is the code dimension)."""

    quantizer: VectorQuantizerConfig = Field(
        default_factory=lambda: VectorQuantizerConfig(codebook_size=1024, dim=256)
    )


@register_tokenizer
class VQGAN(ConvVQTokenizer):
    family = "vqgan"
    config_class = VQGANConfig
    config: VQGANConfig

    def __init__(self, config: VQGANConfig) -> None:
        super().__init__(config)
        dim = config.quantizer.dim
        self.quant_conv = nn.Conv2d(config.z_channels, dim, 1)
        self.quantizer = VectorQuantizer(config.quantizer)
        self.post_quant_conv = nn.Conv2d(dim, config.z_channels, 1)

    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        z_q, indices, aux = self.quantizer.quantize(z)
        return z_q, indices, aux["loss"], aux

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        return self.quantizer.dequantize(indices)

    @torch.no_grad()
    def load_codebook(self, codebook: torch.Tensor) -> None:
        """Set the code vectors (K, dim), e.g. from a converted checkpoint."""
        expected = (self.codebook_size, self.config.quantizer.dim)
        if tuple(codebook.shape) != expected:
            raise ValueError(f"codebook of shape {tuple(codebook.shape)} does not fit this model's {expected}")
        self.quantizer.codebook.copy_(codebook)

