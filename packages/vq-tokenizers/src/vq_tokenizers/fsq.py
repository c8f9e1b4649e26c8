"""FSQ tokenizer (Mentzer et al. 2023): the VQGAN autoencoder with finite scalar quantization.

As in the published setups, two 1x1 convs project the encoder output down to one channel per FSQ level
(``z -> proj_channels -> len(levels)``) and two project back up; the implicit codebook has
``prod(levels)`` entries (8000 for (8, 8, 5, 5, 5), 64000 for (8, 8, 8, 5, 5, 5)) and no parameters,
so there is no codebook loss and no collapse to fight.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field
from torch import nn

from vq_core import FSQ, FSQConfig
from vq_tokenizers.autoencoder import AutoencoderConfig, ConvVQTokenizer
from vq_tokenizers.base import register_tokenizer


class FSQTokenizerConfig(AutoencoderConfig):
    quantizer: FSQConfig = Field(default_factory=lambda: FSQConfig(levels=(8, 8, 5, 5, 5)))
    proj_channels: int = Field(default=256, gt=0, description="width between the two 1x1 projections")


@register_tokenizer
class FSQTokenizer(ConvVQTokenizer):
    family = "fsq"
    config_class = FSQTokenizerConfig
    config: FSQTokenizerConfig

    def __init__(self, config: FSQTokenizerConfig) -> None:
        super().__init__(config)
        dim, mid = len(config.quantizer.levels), config.proj_channels
        self.quant_conv = nn.Sequential(nn.Conv2d(config.z_channels, mid, 1), nn.Conv2d(mid, dim, 1))
        self.quantizer = FSQ(config.quantizer)
        self.post_quant_conv = nn.Sequential(nn.Conv2d(dim, mid, 1), nn.Conv2d(mid, config.z_channels, 1))

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        z_q, indices, aux = self.quantizer.quantize(z)
        return z_q, indices, z.new_zeros((), dtype=torch.float32), aux

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        return self.quantizer.dequantize(indices)
