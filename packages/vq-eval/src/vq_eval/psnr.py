"""Peak signal-to-noise ratio per image."""

from __future__ import annotations

import torch

MAX_PSNR_DB = 100.0  # identical images: cap instead of +inf so means and JSON stay finite


def psnr(images: torch.Tensor, references: torch.Tensor, *, data_range: float = 2.0) -> torch.Tensor:
    """PSNR in dB of each image (B, C, H, W) against its reference, float64 (B,).

    ``data_range`` is max - min of the pixel scale: 2 for [-1, 1] images, 255 for uint8.  The MSE is
    taken over all channels and pixels of an image, then per-image values are averaged by callers
    (the usual tokenizer-paper convention, and what ``skimage.metrics.peak_signal_noise_ratio`` gives
    per image).
    """
    if images.shape != references.shape or images.ndim != 4:
        raise ValueError(f"psnr needs two (B, C, H, W) tensors of one shape, got {tuple(images.shape)} and {tuple(references.shape)}")
    diff = images.detach().double() - references.detach().double()
    mse = diff.pow(2).flatten(1).mean(dim=1)
    floor = data_range**2 * 10 ** (-MAX_PSNR_DB / 10)
    return 10 * torch.log10(data_range**2 / mse.clamp_min(floor))
