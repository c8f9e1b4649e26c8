"""What ``Tokenizer.encode`` / ``decode`` accept besides their native forms, turned into those forms.

Native forms: images float (B, 3, H, W) in [-1, 1]; tokens integer grids (B, h, w).  Also accepted:

* images as a PIL image or a list of equal-sized PIL images (any mode, converted to RGB), a uint8
  tensor (B, 3, H, W) or (3, H, W) in [0, 255] (what ``torchvision.io.read_image`` returns), or one float
  image (3, H, W);
* tokens flat, (B, h*w) in raster order - what ``vq_ar.generate`` returns and ``vq-ar sample
  --tokens-only`` writes - laid out on the tokenizer's grid (or, for another length, the square grid).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch


def as_image_batch(images: Any, *, device: torch.device | None = None) -> torch.Tensor:
    """Images in any accepted form -> float (B, 3, H, W) in [-1, 1] (PIL/uint8 inputs on ``device``)."""
    from PIL import Image

    if isinstance(images, Image.Image):
        images = [images]
    if isinstance(images, (list, tuple)) and images and all(isinstance(im, Image.Image) for im in images):
        sizes = {im.size for im in images}
        if len(sizes) > 1:
            raise ValueError(f"PIL images of different sizes {sorted(sizes)}; resize them to one size first")
        arrays = np.stack([np.asarray(im.convert("RGB"), dtype=np.uint8) for im in images])
        images = torch.from_numpy(arrays).permute(0, 3, 1, 2)
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a tensor (B, 3, H, W), a PIL image or a list of PIL images, got {type(images).__name__}"
        )
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.dtype == torch.uint8:
        images = images.to(device=device).float() / 127.5 - 1.0
    return images


def as_token_grid(indices: torch.Tensor, grid: tuple[int, int], *, family: str) -> torch.Tensor:
    """Tokens (B, h, w) as they are; flat (B, h*w) laid out on ``grid`` (or the square grid of another length)."""
    if not isinstance(indices, torch.Tensor):
        indices = torch.as_tensor(np.asarray(indices))
    if indices.ndim != 2:
        return indices
    length = int(indices.shape[1])
    if length == grid[0] * grid[1]:
        return indices.reshape(indices.shape[0], *grid)
    side = math.isqrt(length)
    if side * side != length or length == 0:
        raise ValueError(
            f"{family}: flat tokens (B, {length}) fit no square grid and not this tokenizer's {grid[0]}x{grid[1]}; "
            f"pass token grids (B, h, w)"
        )
    return indices.reshape(indices.shape[0], side, side)
