"""Structural similarity with an 11-tap Gaussian window (sigma 1.5), per image and channel.

This is the SSIM of Wang et al. as ``skimage.metrics.structural_similarity(gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, data_range=R, channel_axis=...)`` computes it: skimage
filters with a Gaussian truncated at 3.5 sigma (radius 5) and then discards a 5-pixel border before
averaging, which is exactly a *valid* convolution with the normalised 11-tap kernel - so no padding
mode is involved.  Channels are scored separately and averaged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

K1, K2 = 0.01, 0.03


def gaussian_kernel(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    """Normalised 1-D Gaussian taps, radius ``int(truncate * sigma + 0.5)`` as scipy.ndimage uses."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (x / sigma) ** 2)
    return taps / taps.sum()


def ssim(images: torch.Tensor, references: torch.Tensor, *, data_range: float = 2.0, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM of each image (B, C, H, W) against its reference, float64 (B,)."""
    if images.shape != references.shape or images.ndim != 4:
        raise ValueError(f"ssim needs two (B, C, H, W) tensors of one shape, got {tuple(images.shape)} and {tuple(references.shape)}")
    taps = gaussian_kernel(sigma).to(images.device)
    size = taps.numel()
    batch, channels, height, width = images.shape
    if height < size or width < size:
        raise ValueError(f"ssim with sigma {sigma} needs images of at least {size}x{size}, got {height}x{width}")
    x = images.detach().double().reshape(batch * channels, 1, height, width)
    y = references.detach().double().reshape(batch * channels, 1, height, width)
    # one separable filtering pass over the five moment maps
    moments = torch.cat([x, y, x * x, y * y, x * y])
    moments = F.conv2d(moments, taps.view(1, 1, size, 1))
    moments = F.conv2d(moments, taps.view(1, 1, 1, size))
    mu_x, mu_y, xx, yy, xy = moments.chunk(5)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.flatten(1).mean(dim=1).view(batch, channels).mean(dim=1)
