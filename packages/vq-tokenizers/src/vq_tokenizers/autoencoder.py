"""The conv autoencoder shared by VQGAN, CVQ-VAE and FSQ: encoder -> quant_conv -> quantizer ->
post_quant_conv -> decoder.

Families differ only in the quantizer and in the 1x1 projections around it; the trainer, converters,
tokenize and reconstruct code talk to this class alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from pydantic import Field, model_validator
from torch import nn

from vq_core import StrictConfig
from vq_tokenizers.base import Tokenizer
from vq_tokenizers.nn import Decoder, Encoder
from vq_tokenizers.nn.blocks import NORM_GROUPS
from vq_tokenizers.token_space import module_tensors


class AutoencoderConfig(StrictConfig):
    """Shape of the taming-transformers encoder/decoder pair."""

    image_size: int = Field(default=256, gt=0)
    ch: int = Field(default=128, gt=0)
    ch_mult: tuple[int, ...] = Field(default=(1, 1, 2, 2, 4), min_length=1)
    num_res_blocks: int = Field(default=2, gt=0)
    attn_resolutions: tuple[int, ...] = Field(default=(16,), description="feature-map sizes with attention")
    z_channels: int = Field(default=256, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)

    @property
    def downsample_factor(self) -> int:
        return 2 ** (len(self.ch_mult) - 1)

    @property
    def grid(self) -> tuple[int, int]:
        side = self.image_size // self.downsample_factor
        return (side, side)

    @model_validator(mode="after")
    def _consistent_shape(self) -> AutoencoderConfig:
        if self.image_size % self.downsample_factor:
            raise ValueError(
                f"image_size {self.image_size} is not divisible by the downsample factor {self.downsample_factor} "
                f"of ch_mult {self.ch_mult}"
            )
        bad = [self.ch * m for m in self.ch_mult if (self.ch * m) % NORM_GROUPS]
        if bad:
            raise ValueError(f"ch * ch_mult gives widths {bad} not divisible by {NORM_GROUPS} (GroupNorm groups)")
        return self


@dataclass
class AutoencoderOutput:
    """What one training forward pass yields."""

    recon: torch.Tensor
    indices: torch.Tensor
    quant_loss: torch.Tensor
    aux: dict[str, Any] = field(default_factory=dict)


class ConvVQTokenizer(Tokenizer):
    """Base of the conv tokenizers; subclasses supply the quantizer and the projections around it."""

    config: AutoencoderConfig

    def __init__(self, config: AutoencoderConfig) -> None:
        super().__init__(config)
        shape = dict(
            ch=config.ch,
            ch_mult=config.ch_mult,
            num_res_blocks=config.num_res_blocks,
            attn_resolutions=config.attn_resolutions,
            resolution=config.image_size,
            z_channels=config.z_channels,
            dropout=config.dropout,
        )
        self.encoder = Encoder(**shape)
        self.decoder = Decoder(**shape)

    # --- supplied by each family ------------------------------------------------------------
    quant_conv: nn.Module
    quantizer: nn.Module
    post_quant_conv: nn.Module

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Latents (B, D, h, w) -> (quantized latents, indices (B, h, w), quantizer loss, aux)."""
        raise NotImplementedError

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> quantized latents (B, D, h, w)."""
        raise NotImplementedError

    # --- the Tokenizer interface ----------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def grid(self) -> tuple[int, int]:
        return self.config.grid

    @property
    def size_multiple(self) -> int:
        """Convolutions take any input whose sides the encoder halves exactly."""
        return self.config.downsample_factor

    @property
    def last_layer(self) -> nn.Parameter:
        return self.decoder.last_layer

    def token_space_tensors(self) -> dict[str, torch.Tensor]:
        """Encoder, ``quant_conv`` and the quantizer's learned parameters (the VQ codebook; FSQ has none).

        Quantizer buffers (usage EMA, EMA sums) and everything after the quantizer do not change tokens.
        """
        return {
            **module_tensors("encoder", self.encoder),
            **module_tensors("quant_conv", self.quant_conv),
            **{f"quantizer.{k}": v for k, v in self.quantizer.named_parameters()},
        }

    def forward(self, images: torch.Tensor) -> AutoencoderOutput:
        self.check_image_size(images)
        z_q, indices, loss, aux = self.quantize(self.quant_conv(self.encoder(images)))
        return AutoencoderOutput(self.decoder(self.post_quant_conv(z_q)), indices, loss, aux)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_image_size(images)
        _, indices, _, _ = self.quantize(self.quant_conv(self.encoder(images)))
        return indices

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.ndim != 3 or min(indices.shape[1:]) <= 0:
            raise ValueError(f"{self.family}: expected token grids (B, h, w) such as (B, {self.grid[0]}, {self.grid[1]}), got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(
                f"{self.family}: token ids must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]"
            )
        return self.decoder(self.post_quant_conv(self.dequantize(indices.long())))
