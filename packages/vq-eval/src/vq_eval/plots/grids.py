"""Image grids: original/reconstruction pairs, and the image patches each frequent code stands for."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

BORDER = 255  # white separators between tiles


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    """(..., 3, H, W) in [-1, 1] -> (..., H, W, 3) uint8."""
    array = images.detach().float().cpu().clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    return array.movedim(-3, -1).numpy()


def _tile(tiles: np.ndarray, pad: int) -> np.ndarray:
    """(rows, cols, h, w, 3) -> one (rows*(h+pad)+pad, cols*(w+pad)+pad, 3) mosaic with white gaps."""
    rows, cols, h, w, _ = tiles.shape
    mosaic = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), BORDER, dtype=np.uint8)
    for r in range(rows):
        for c in range(cols):
            top, left = pad + r * (h + pad), pad + c * (w + pad)
            mosaic[top : top + h, left : left + w] = tiles[r, c]
    return mosaic


def reconstruction_grid(
    originals: torch.Tensor, reconstructions: torch.Tensor, *, pairs_per_row: int = 4, pad: int = 2, min_size: int = 128
) -> Image.Image:
    """Original | reconstruction pairs (B, 3, H, W) in [-1, 1], ``pairs_per_row`` pairs a row.

    Within a pair the two images touch (so differences are easy to see); pairs are separated by a
    wider white gap.  Images smaller than ``min_size`` are enlarged by an integer factor (nearest) so
    token-level artefacts stay visible instead of being smoothed away by the viewer.
    """
    if originals.shape != reconstructions.shape or originals.ndim != 4:
        raise ValueError(
            f"reconstruction_grid needs two (B, 3, H, W) tensors of one shape, got {tuple(originals.shape)}, {tuple(reconstructions.shape)}"
        )
    pairs = np.concatenate([_to_uint8(originals), _to_uint8(reconstructions)], axis=2)  # (B, H, 2W, 3)
    scale = max(1, -(-min_size // min(originals.shape[-2:])))
    pairs = pairs.repeat(scale, axis=1).repeat(scale, axis=2)
    count = pairs.shape[0]
    rows = -(-count // pairs_per_row)
    cols = min(count, pairs_per_row)
    blank = np.full_like(pairs[:1], BORDER)
    padded = np.concatenate([pairs] + [blank] * (rows * cols - count)) if rows * cols > count else pairs
    return Image.fromarray(_tile(padded.reshape(rows, cols, *pairs.shape[1:]), pad * 2))


def patches_per_token(
    images: torch.Tensor,
    tokens: torch.Tensor,
    *,
    top_codes: int = 16,
    patches: int = 12,
    seed: int = 0,
    min_patch_pixels: int = 24,
) -> Figure:
    """For the ``top_codes`` most frequent codes, ``patches`` random image patches that map to each.

    ``tokens`` (N, h, w) is the token grid of ``images`` (N, 3, H, W); each token covers an
    ``H/h x W/w`` patch.  Rows are codes (labelled with id and count), sorted by frequency; a code
    seen fewer times than ``patches`` leaves its row partly blank.  Patches are upscaled (nearest) to
    at least ``min_patch_pixels`` so small ones stay visible.
    """
    if tokens.ndim != 3 or images.ndim != 4 or tokens.shape[0] != images.shape[0]:
        raise ValueError(
            f"patches_per_token needs images (N, 3, H, W) and tokens (N, h, w), got {tuple(images.shape)}, {tuple(tokens.shape)}"
        )
    n, h, w = tokens.shape
    height, width = images.shape[-2:]
    if height % h or width % w:
        raise ValueError(f"image size {height}x{width} is not a multiple of the token grid {h}x{w}")
    ph, pw = height // h, width // w
    flat = tokens.detach().cpu().long().reshape(-1)
    counts = torch.bincount(flat)
    order = torch.argsort(counts, descending=True, stable=True)
    codes = [int(c) for c in order[:top_codes] if counts[c] > 0]
    generator = torch.Generator().manual_seed(seed)
    scale = max(1, -(-min_patch_pixels // min(ph, pw)))
    pixels = _to_uint8(images)  # (N, H, W, 3)
    tiles = np.full((len(codes), patches, ph * scale, pw * scale, 3), BORDER, dtype=np.uint8)
    for row, code in enumerate(codes):
        where = torch.nonzero(flat == code).squeeze(1)
        chosen = where[torch.randperm(where.numel(), generator=generator)[:patches]]
        for col, position in enumerate(chosen.tolist()):
            image, rest = divmod(position, h * w)
            i, j = divmod(rest, w)
            patch = pixels[image, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw]
            tiles[row, col] = patch.repeat(scale, axis=0).repeat(scale, axis=1)
    mosaic = _tile(tiles, 1)
    figure = Figure(figsize=(max(4.0, mosaic.shape[1] / 60), max(2.0, mosaic.shape[0] / 60) + 0.6))
    axes = figure.add_subplot()
    axes.imshow(mosaic, interpolation="nearest")
    axes.set_yticks([1 + (r + 0.5) * (ph * scale + 1) for r in range(len(codes))])
    axes.set_yticklabels([f"code {c} ({int(counts[c])})" for c in codes], fontsize=8)
    axes.set_xticks([])
    axes.set_title(f"Image patches per token: top {len(codes)} codes of {n} images", fontsize=10)
    return figure
