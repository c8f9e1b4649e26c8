"""Pixel decoders for semantic tokens: a conv decoder trained on top of a frozen VQ-KD / Cluster tokenizer.

VQ-KD and Cluster tokens are chosen to predict teacher features, not pixels, so the token space is
fixed first and a decoder is fitted to it afterwards ("Image Understanding Makes for A Good Tokenizer
for Image Generation").  A :class:`PixelDecoderTokenizer` (family ``pixel``) holds

* the **frozen source tokenizer** - its family and config in this config, its weights in this
  checkpoint - so ``encode`` is the source's ``encode``, and
* **the decoder**: token -> embedding (the source's code vector, or a learned table) -> 1x1 conv ->
  the VQGAN conv decoder (``nn.Decoder``, taming/LlamaGen layout) -> image.

``token_space_hash()`` is the source's (its config and its encoder/codebook weights, which this
checkpoint carries as a frozen copy under ``source.``), so token shards made with either model are
interchangeable while shards of any other tokenizer - one of the same preset with other weights
included - are refused.  Training reuses the VQGAN trainer and objective
(L1/MSE + LPIPS + optional PatchGAN): ``forward`` returns the same :class:`AutoencoderOutput`, the
codebook loss is zero and only the decoder's parameters receive gradients.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from vq_core import ConfigError, StrictConfig
from vq_tokenizers.autoencoder import AutoencoderOutput
from vq_tokenizers.base import Tokenizer, build_tokenizer, register_tokenizer
from vq_tokenizers.nn import Decoder
from vq_tokenizers.nn.blocks import NORM_GROUPS
from vq_tokenizers.vit import ViTConfig, ViTPixelDecoder


class PixelDecoderConfig(StrictConfig):
    """The source tokenizer (family + config) and the decoder's shape."""

    source_family: str = Field(description="family of the frozen tokenizer whose tokens are decoded")
    source_config: dict[str, Any] = Field(description="that tokenizer's config (its weights are in the checkpoint)")
    embedding: Literal["codebook", "learned"] = Field(
        default="codebook", description="codebook: the source's code vectors; learned: a new embedding table"
    )
    image_size: int | None = Field(
        default=None, gt=0,
        description="side of the images decoded (and encoded); None: the source's own. The seed trains pixel decoders at "
        "256 px on a 224-px VQ-KD/Cluster (16x16 tokens through interpolated position embeddings)",
    )
    embed_dim: int = Field(default=256, gt=0, description="width of the learned table (embedding='learned')")
    decoder: Literal["conv", "vit"] = Field(
        default="conv", description="conv: the VQGAN decoder (ch, ch_mult, ...); vit: the seed's ViT decoder (vit_* fields)"
    )
    vit_dim: int = Field(default=768, gt=0, description="vit decoder width (seed decoder/vqkd.py: 768; vqkd_large: 1280)")
    vit_depth: int = Field(default=12, gt=0, description="vit decoder blocks (12; vqkd_large: 32)")
    vit_heads: int = Field(default=12, gt=0, description="vit decoder heads (12; vqkd_large: 16)")
    ch: int = Field(default=128, gt=0)
    ch_mult: tuple[int, ...] = Field(default=(1, 1, 2, 2, 4), min_length=1, description="one entry per resolution, lowest last")
    num_res_blocks: int = Field(default=2, gt=0, description="the decoder runs num_res_blocks + 1 per level")
    attn_resolutions: tuple[int, ...] = Field(default=(), description="feature-map sizes with attention (besides the mid block)")
    z_channels: int = Field(default=256, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)


@register_tokenizer
class PixelDecoderTokenizer(Tokenizer):
    family = "pixel"
    config_class = PixelDecoderConfig
    config: PixelDecoderConfig

    def __init__(self, config: PixelDecoderConfig, *, source: Tokenizer | None = None) -> None:
        """``source``: the already built (and loaded) tokenizer the config names; built afresh when None."""
        super().__init__(config)
        if config.source_family == self.family:
            raise ConfigError("a pixel decoder's source must be a tokenizer, not another pixel decoder")
        if source is not None and (source.family, source.config.model_dump(mode="json")) != (
            config.source_family, config.source_config
        ):
            raise ConfigError(f"the {source.family} source given does not match source_family/source_config of the config")
        self.source = source if source is not None else build_tokenizer(config.source_family, config.source_config)
        self.source.requires_grad_(False).eval()
        grid = self.grid
        factor = 2 ** (len(config.ch_mult) - 1) if config.decoder == "conv" else self.image_size // grid[0]
        if config.decoder == "vit" and (grid[0] != grid[1] or grid[0] * factor != self.image_size):
            raise ConfigError(
                f"pixel decoder: the {config.source_family} source maps {self.image_size} px images to a {grid[0]}x{grid[1]} "
                f"grid; a vit decoder needs a square grid that divides image_size"
            )
        if grid[0] != grid[1] or grid[0] * factor != self.image_size:
            raise ConfigError(
                f"pixel decoder: ch_mult {config.ch_mult} upsamples x{factor}, but the {config.source_family} source maps "
                f"{self.image_size} px images to a {grid[0]}x{grid[1]} grid; use {(self.image_size // grid[0]).bit_length()} "
                f"ch_mult entries (image_size / grid must be a power of two)"
            )
        bad = [config.ch * m for m in config.ch_mult if (config.ch * m) % NORM_GROUPS]
        if bad:
            raise ConfigError(f"pixel decoder: ch * ch_mult gives widths {bad} not divisible by {NORM_GROUPS} (GroupNorm)")
        if config.embedding == "learned":
            self.embed = nn.Embedding(self.codebook_size, config.embed_dim)
            nn.init.normal_(self.embed.weight, std=1.0)
            embed_dim = config.embed_dim
        else:
            self.embed = None
            embed_dim = self._source_code_dim()
        self.embed_proj = nn.Conv2d(embed_dim, config.z_channels, 1)
        if config.decoder == "vit":  # positions on the source's own grid, interpolated as the seed's VQKDDecoder does
            vit = ViTConfig(
                image_size=self.source.grid[0], patch_size=1, in_channels=config.z_channels, dim=config.vit_dim,
                depth=config.vit_depth, heads=config.vit_heads,
            )
            self.decoder: nn.Module = ViTPixelDecoder(vit, factor)
            return
        self.decoder = Decoder(
            ch=config.ch,
            ch_mult=config.ch_mult,
            num_res_blocks=config.num_res_blocks,
            attn_resolutions=config.attn_resolutions,
            resolution=self.image_size,
            z_channels=config.z_channels,
            dropout=config.dropout,
        )

    @classmethod
    def from_source(cls, source: Tokenizer, **decoder: Any) -> PixelDecoderTokenizer:
        """A fresh decoder over ``source`` (e.g. ``load_tokenizer(ckpt)``), which becomes its frozen encoder."""
        if isinstance(source, PixelDecoderTokenizer):
            source = source.source
        config = PixelDecoderConfig.from_dict(
            {"source_family": source.family, "source_config": source.config.model_dump(mode="json"), **decoder},
            source=f"pixel decoder over a {source.family} tokenizer",
        )
        return cls(config, source=source)

    def _source_code_dim(self) -> int:
        if not hasattr(self.source, "dequantize"):
            raise ConfigError(
                f"{self.config.source_family} tokenizers expose no code vectors (dequantize); use embedding='learned'"
            )
        with torch.no_grad():
            return int(self.source.dequantize(torch.zeros(1, *self.grid, dtype=torch.long)).shape[1])

    def train(self, mode: bool = True) -> PixelDecoderTokenizer:
        """Train the decoder; the source stays in eval mode (no codebook EMA, no usage updates)."""
        super().train(mode)
        self.source.eval()
        return self

    # --- Tokenizer interface ------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.source.codebook_size

    @property
    def image_size(self) -> int:
        return self.config.image_size or self.source.image_size

    @property
    def grid(self) -> tuple[int, int]:
        return self.source.grid_for(self.image_size)

    @property
    def size_multiple(self) -> int | None:
        """Encoding follows the source (``encode`` is its ``encode``); the decoder's output side is ``image_size``."""
        return self.source.size_multiple

    def grid_for(self, height: int, width: int | None = None) -> tuple[int, int]:
        return self.source.grid_for(height, width)

    @property
    def last_layer(self) -> nn.Parameter:
        return self.decoder.last_layer

    def token_space_tensors(self) -> dict[str, torch.Tensor]:
        """The frozen source's token-deciding weights (this decoder's own weights never change tokens)."""
        return self.source.token_space_tensors()

    def token_space_hash(self) -> str:
        """The source's identity (its config and weights), so its token shards are accepted here."""
        return self.source.token_space_hash()

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.source.encode(images)

    def embed_tokens(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h, w) -> decoder input (B, z_channels, h, w)."""
        if self.embed is not None:
            vectors = self.embed(indices).permute(0, 3, 1, 2)
        else:
            with torch.no_grad():
                vectors = self.source.dequantize(indices)
        return self.embed_proj(vectors.to(self.embed_proj.weight.dtype))

    def reconstruct(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens -> images, with gradients into the decoder (training)."""
        return self.decoder(self.embed_tokens(indices))

    def forward(self, images: torch.Tensor) -> AutoencoderOutput:
        self.check_image_size(images)
        indices = self.encode(images)
        recon = self.reconstruct(indices)
        return AutoencoderOutput(recon, indices, recon.new_zeros((), dtype=torch.float32))

    @torch.no_grad()
    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        if indices.ndim != 3 or tuple(indices.shape[1:]) != self.grid:
            raise ValueError(f"pixel: expected token grids (B, {self.grid[0]}, {self.grid[1]}), got {tuple(indices.shape)}")
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(
                f"pixel: token ids must lie in [0, {self.codebook_size}), got [{int(indices.min())}, {int(indices.max())}]"
            )
        return self.reconstruct(indices.long())
