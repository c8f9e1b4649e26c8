"""The frozen feature extractors ("teachers") behind VQ-KD targets and Cluster codebooks.

Every teacher takes images in [-1, 1] at any size, applies its own preprocessing (rescale to [0, 1],
resize to its input size, normalise with its mean/std) and returns patch features (B, N, D) on its
own grid.  A :class:`TeacherConfig` describes the architecture completely (a Hugging Face config dict
or a torchvision model name), so a tokenizer that embeds a teacher (Cluster) is rebuilt from its
checkpoint alone: the config builds the network and the checkpoint's state dict fills it.

Teachers never train: parameters are frozen and ``train()`` keeps them in eval mode, so a training
loop that calls ``model.train()`` on a tokenizer holding a teacher does not switch on its dropout.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vq_core import StrictConfig

TeacherKind = Literal["clip", "vit", "dinov2", "mae", "torchvision_vit", "torchvision_convnext", "module", "openclip", "evaclip"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class TeacherError(FileNotFoundError):
    """Teacher weights are missing or unusable; the message names the path and what was expected."""


class TeacherConfig(StrictConfig):
    """Everything needed to rebuild a teacher's network (its weights travel in a state dict)."""

    kind: TeacherKind
    arch: dict[str, Any] = Field(
        description="Hugging Face config dict, {'name': <torchvision model name>}, {'class': 'pkg.mod:Class', 'kwargs': {...}} "
        "(module), or open_clip's {'name', 'embed_dim', 'vision_cfg', 'quick_gelu'} (openclip/evaclip)"
    )
    image_size: int = Field(gt=0, description="side the teacher sees; inputs are resized to it")
    layer: int | None = Field(
        default=None, description="hidden state to read (0: embeddings, i: after block i); None: final output"
    )
    project: bool = Field(default=False, description="clip only: post-layernorm + visual projection (BEiT v2 target)")
    post_norm: bool = Field(
        default=False,
        description="clip only: post-layernorm on every patch token, no projection (the seed's CLIPTeacher(with_proj=False), "
        "its Cluster CLIP encoder: 768-d for ViT-B/16)",
    )
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    source: str = Field(default="", description="where the weights came from (informational)")


class Teacher(nn.Module):
    """Frozen patch-feature extractor; subclasses implement :meth:`forward_features` and the shape properties."""

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("mean", torch.tensor(config.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.std).view(1, 3, 1, 1), persistent=False)

    def freeze(self) -> Teacher:
        """Stop gradients into the weights and switch to eval mode (call once the network is built)."""
        self.requires_grad_(False)
        return self.eval()

    def train(self, mode: bool = True) -> Teacher:
        return super().train(False)

    # --- shape -----------------------------------------------------------------------------------
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def stride(self) -> int:
        """Input pixels per feature-grid cell along a side (patch size; 32 for ConvNeXt).  Subclasses define
        this or :attr:`grid`; the default reads it off ``grid`` at the teacher's own size."""
        return self.image_size // self.grid[0]

    @property
    def grid(self) -> tuple[int, int]:
        """Feature grid at the teacher's own input size."""
        return self.grid_at(self.image_size)

    def grid_at(self, image_size: int) -> tuple[int, int]:
        """Feature grid when the teacher runs at ``image_size`` (ViT teachers interpolate their position
        embeddings: the seed runs its Cluster teachers at 256 px, 16x16 patches)."""
        if image_size <= 0 or image_size % self.stride:
            raise ValueError(f"teacher {self.kind}: input size {image_size} is not a multiple of its stride {self.stride}")
        side = image_size // self.stride
        return (side, side)

    @property
    def dim(self) -> int:
        raise NotImplementedError

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    # --- features --------------------------------------------------------------------------------
    def preprocess(self, images: torch.Tensor, image_size: int | None = None) -> torch.Tensor:
        """[-1, 1] images of any size -> the teacher's normalised input at ``image_size`` (default: its own)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"teacher {self.kind}: expected images (B, 3, H, W) in [-1, 1], got {tuple(images.shape)}")
        size = image_size or self.image_size
        x = (images.float().clamp(-1, 1) + 1) / 2
        if tuple(x.shape[-2:]) != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
            x = x.clamp(0, 1)
        return (x - self.mean) / self.std

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised square pixels (B, 3, S, S), S a multiple of :attr:`stride` -> patch features (B, N, D)."""
        raise NotImplementedError

    @torch.no_grad()
    def features(self, images: torch.Tensor, image_size: int | None = None) -> torch.Tensor:
        """Images in [-1, 1] (B, 3, H, W) -> fp32 patch features (B, h * w, dim), row-major, with the
        teacher run at ``image_size`` (default: its own input size; grid :meth:`grid_at`)."""
        if image_size is not None:
            self.grid_at(image_size)
        return self.forward_features(self.preprocess(images, image_size)).float()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images)


def resample_grid(features: torch.Tensor, source: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """Patch features (B, h*w, D) on grid ``source`` -> (B, h'*w', D) on ``target`` (identity if equal).

    Lets a student with a 14x14 token grid learn from a teacher with a 16x16 patch grid (OpenCLIP /14,
    DINOv2) or a 7x7 map (ConvNeXt); bicubic without antialiasing, the seed's ``BaseTeacher``
    ``F.interpolate(x, output_wh, mode='bicubic')``.
    """
    if tuple(source) == tuple(target):
        return features
    b, n, d = features.shape
    if n != source[0] * source[1]:
        raise ValueError(f"features have {n} tokens, not the {source[0]}x{source[1]} grid they were said to have")
    grid = features.transpose(1, 2).reshape(b, d, *source)
    grid = F.interpolate(grid, size=tuple(target), mode="bicubic", align_corners=False)
    return grid.flatten(2).transpose(1, 2)
