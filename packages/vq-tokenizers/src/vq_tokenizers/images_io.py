"""Writing image tensors in [-1, 1] to PNG files atomically."""

from __future__ import annotations

import io
import os

import torch
from torchvision.utils import make_grid, save_image

from vq_core import atomic_write_bytes


def save_png(images: torch.Tensor, path: str | os.PathLike[str], *, nrow: int = 8, padding: int = 2) -> None:
    """Save a batch (B, 3, H, W) (as a grid) or one image (3, H, W), mapping [-1, 1] to [0, 255]."""
    buffer = io.BytesIO()
    grid = images if images.ndim == 3 else make_grid(images, nrow=nrow, padding=padding)
    save_image(grid.detach().float().cpu().add(1).div(2).clamp(0, 1), buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def reconstruction_grid(images: torch.Tensor, recon: torch.Tensor, *, max_images: int = 8) -> torch.Tensor:
    """Inputs on the top row, reconstructions below, as one (3, H', W') image."""
    n = min(max_images, images.shape[0])
    both = torch.cat([images[:n].float().cpu(), recon[:n].float().cpu().clamp(-1, 1)])
    return make_grid(both, nrow=n, padding=2, pad_value=1.0)
