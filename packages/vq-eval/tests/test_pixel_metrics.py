"""PSNR and Gaussian SSIM against scikit-image on real photos."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vq_eval import psnr, ssim


@pytest.fixture
def pairs(photo_batches) -> tuple[np.ndarray, np.ndarray]:
    """Four 40x40 photos in [-1, 1] (N, H, W, 3) and degraded copies (noise + blur-like shift)."""
    clean = torch.cat(photo_batches(4, 4, size=40)).permute(0, 2, 3, 1).double().numpy()
    rng = np.random.default_rng(0)
    noisy = np.clip(0.8 * clean + 0.2 * np.roll(clean, 1, axis=2) + rng.normal(0, 0.08, clean.shape), -1, 1)
    return clean, noisy


def _nchw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(0, 3, 1, 2)


def test_ssim_matches_skimage_gaussian(pairs) -> None:
    clean, noisy = pairs
    ours = ssim(_nchw(noisy).float(), _nchw(clean).float(), data_range=2.0)
    expected = [
        structural_similarity(c, n, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0, channel_axis=2)
        for c, n in zip(clean, noisy)
    ]
    assert 0.2 < min(expected) < max(expected) < 0.95
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)


def test_ssim_on_uint8_scale_and_identity(pairs) -> None:
    """SSIM does not depend on the pixel scale when data_range follows it; identical images score 1."""
    clean, noisy = pairs
    to255 = lambda a: np.round((a + 1) * 127.5)  # noqa: E731
    ours = ssim(_nchw(to255(noisy)), _nchw(to255(clean)), data_range=255.0)
    expected = [
        structural_similarity(c, n, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255.0, channel_axis=2)
        for c, n in zip(to255(clean), to255(noisy))
    ]
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)
    np.testing.assert_allclose(ssim(_nchw(clean), _nchw(clean)).numpy(), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8))


def test_psnr_matches_skimage(pairs) -> None:
    clean, noisy = pairs
    ours = psnr(_nchw(noisy), _nchw(clean), data_range=2.0)
    expected = [peak_signal_noise_ratio(c, n, data_range=2.0) for c, n in zip(clean, noisy)]
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-10)
    assert psnr(_nchw(clean), _nchw(clean)).tolist() == [100.0] * 4  # capped, not inf
