"""VQ-KD (BEiT v2): a ViT encoder whose tokens are trained to reconstruct a frozen teacher's features.

``images -> ViT encoder -> encode_head (linear-tanh-linear to the code dim) -> cosine codebook (EMA,
k-means init) -> 1-block ViT decoder over the code map -> decode_head -> predicted teacher features``,
trained with ``1 - cos(prediction, teacher feature)`` per patch.  Inputs of any size that is a multiple
of the patch size are tokenized (the encoder and the decoder interpolate their position embeddings, as
BEiT v2 and the seed do), so a model trained at 224 px gives 16x16 tokens for 256 px images.  The teacher is not part of the
tokenizer (``training`` passes it in), so checkpoints stay small and ``load_tokenizer`` needs nothing
else.  The tokens carry semantics, not pixels: ``decode`` raises until a pixel decoder is trained on
top (family ``pixel``, ``pixel_decoder.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from vq_core import StrictConfig, VectorQuantizer, VectorQuantizerConfig
from vq_tokenizers.base import Tokenizer, register_tokenizer
from vq_tokenizers.token_space import module_tensors
from vq_tokenizers.vit import TaskHead, ViT, ViTConfig


def beit_quantizer(codebook_size: int, dim: int) -> dict[str, Any]:
    """BEiT v2's quantizer as a config dict: l2-normalised codes searched by cosine, k-means init on the
    first training batch, EMA code updates (decay 0.99; renormalised, BEiT v2's "norm EMA"), commitment
    weight 1.0 on the normalised codes (BEiT v2 ``NormEMAVectorQuantizer(beta=1.0)``; the seed's
    ``CommitmentLoss(mse=dict(norm=True))`` at its default weight 1)."""
    return {
        "codebook_size": codebook_size, "dim": dim, "distance": "cosine", "kmeans_init": True, "ema": True,
        "ema_decay": 0.99, "beta": 1.0,
    }


class VQKDConfig(StrictConfig):
    """Encoder and decoder stacks, the codebook, and the width of the teacher features to predict."""

    encoder: ViTConfig = Field(default_factory=ViTConfig)
    decoder: ViTConfig = Field(
        default_factory=lambda: ViTConfig(image_size=14, patch_size=1, in_channels=32, depth=1),
        description="runs over the code map: image_size = encoder grid, patch_size 1, in_channels = code dim",
    )
    quantizer: VectorQuantizerConfig = Field(
        default_factory=lambda: VectorQuantizerConfig(**beit_quantizer(8192, 32))
    )
    target_dim: int = Field(default=512, gt=0, description="teacher feature width (CLIP ViT-B/16 projected: 512)")

    @model_validator(mode="after")
    def _decoder_fits(self) -> VQKDConfig:
        grid = self.encoder.grid[0]
        problems = []
        if self.decoder.image_size != grid:
            problems.append(f"decoder.image_size {self.decoder.image_size} != encoder grid {grid}")
        if self.decoder.patch_size != 1:
            problems.append(f"decoder.patch_size must be 1, got {self.decoder.patch_size}")
        if self.decoder.in_channels != self.quantizer.dim:
            problems.append(f"decoder.in_channels {self.decoder.in_channels} != quantizer.dim {self.quantizer.dim}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass
class VQKDOutput:
    """One training forward pass: predicted teacher features (B, N, target_dim), tokens, codebook loss."""

    prediction: torch.Tensor
    indices: torch.Tensor
    quant_loss: torch.Tensor
    aux: dict[str, Any] = field(default_factory=dict)


def cosine_distance_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over patches of ``1 - cos(prediction, target)`` (fp32), the VQ-KD reconstruction loss."""
    return (1 - F.cosine_similarity(prediction.float(), target.float(), dim=-1)).mean()


@register_tokenizer
class VQKD(Tokenizer):
    family = "vqkd"
    config_class = VQKDConfig
    config: VQKDConfig

    def __init__(self, config: VQKDConfig) -> None:
        super().__init__(config)
        self.encoder = ViT(config.encoder)
        self.encode_head = TaskHead(config.encoder.dim, config.quantizer.dim)
        self.quantizer = VectorQuantizer(config.quantizer)
        self.decoder = ViT(config.decoder)
        self.decode_head = TaskHead(config.decoder.dim, config.target_dim)

    # --- Tokenizer interface ------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.quantizer.codebook_size

    @property
    def image_size(self) -> int:
        return self.config.encoder.image_size

    @property
    def grid(self) -> tuple[int, int]:
        return self.config.encoder.grid

    @property
    def size_multiple(self) -> int:
        """Any multiple of the patch size: position embeddings are interpolated (224 px training -> 256 px tokens)."""
        return self.config.encoder.patch_size

    @property
    def code_dim(self) -> int:
        return self.config.quantizer.dim

    def token_space_tensors(self) -> dict[str, torch.Tensor]:
        """The weights that decide tokens (encoder, head, codebook); the decoder does not count."""
        tensors = {**module_tensors("encoder", self.encoder), **module_tensors("encode_head", self.encode_head)}
        return {**tensors, "codebook": self.quantizer.codebook}

    # --- the model ------------------------------------------------------------------------------
    def code_map(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> continuous codes (B, code_dim, h, w) before quantization (head in fp32, as BEiT v2)."""
        h, w = self.check_image_size(images)
        features = self.encoder(images)
        with torch.autocast(features.device.type, enabled=False):
            codes = self.encode_head(features.float())
        b = codes.shape[0]
        return codes.transpose(1, 2).reshape(b, self.code_dim, h, w)

    def quantize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """Images -> (quantized code map (B, D, h, w), indices (B, h, w), codebook loss, quantizer aux)."""
        z_q, indices, aux = self.quantizer.quantize(self.code_map(images))
        return z_q, indices, aux["loss"], aux

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> code vectors (B, code_dim, h, w), as the decoder receives them."""
        return self.quantizer.dequantize(indices)

    def predict_features(self, code_map: torch.Tensor) -> torch.Tensor:
        """Quantized code map (B, D, h, w) -> predicted teacher features (B, h*w, target_dim)."""
        return self.decode_head(self.decoder(code_map))

    def forward(self, images: torch.Tensor) -> VQKDOutput:
        z_q, indices, loss, aux = self.quantize(images)
        return VQKDOutput(self.predict_features(z_q), indices, loss, aux)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.quantize(images)[1]

    @torch.no_grad()
    def decode_features(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (B, h, w) -> the teacher features they stand for (B, h*w, target_dim)."""
        return self.predict_features(self.dequantize(indices.long()))
