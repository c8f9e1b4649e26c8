"""Frechet distance: agrees with pytorch-fid, exact on rank-deficient covariances, same fallback."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
from pytorch_fid.fid_score import calculate_frechet_distance

from vq_eval import frechet_distance


def _gaussian_stats(rng: np.random.Generator, n: int, dim: int, shift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Correlated non-negative 'features' like Inception pool outputs; returns (samples, mu, sigma)."""
    samples = np.abs(rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) * 0.3 + shift)
    return samples, samples.mean(axis=0), np.cov(samples, rowvar=False)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_matches_pytorch_fid(method: str) -> None:
    rng = np.random.default_rng(0)
    _, mu1, sigma1 = _gaussian_stats(rng, 1200, 256, 0.5)
    _, mu2, sigma2 = _gaussian_stats(rng, 900, 256, 0.6)
    reference = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2, method=method)
    assert reference > 1.0
    assert ours == pytest.approx(reference, rel=1e-6)


def test_rank_deficient_covariances_match_nuclear_norm() -> None:
    """Fewer samples than dimensions: tr sqrt(S1 S2) equals the nuclear norm of Y1 Y2^T (S_i = Y_i^T Y_i)."""
    rng = np.random.default_rng(1)
    x1, mu1, sigma1 = _gaussian_stats(rng, 40, 300, 0.5)
    x2, mu2, sigma2 = _gaussian_stats(rng, 30, 300, 0.7)
    y1 = (x1 - mu1) / np.sqrt(len(x1) - 1)
    y2 = (x2 - mu2) / np.sqrt(len(x2) - 1)
    exact_trace = np.linalg.svd(y1 @ y2.T, compute_uv=False).sum()
    exact = (mu1 - mu2) @ (mu1 - mu2) + np.trace(sigma1) + np.trace(sigma2) - 2 * exact_trace
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(exact, rel=1e-6)


def test_identical_statistics_give_zero() -> None:
    """Even 3 samples in 1024-d (rank 2): rounding noise in the null space must not add up."""
    rng = np.random.default_rng(2)
    _, mu, sigma = _gaussian_stats(rng, 3, 1024, 5.0)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9 * np.trace(sigma)


def test_singular_fallback_matches_pytorch_fid(monkeypatch: pytest.MonkeyPatch) -> None:
    """When sqrtm of the product is not finite, both add eps*I to the covariances and retry."""
    real_sqrtm = scipy.linalg.sqrtm
    calls = []

    def failing_first(matrix, *args, **kwargs):
        calls.append(matrix)
        result = real_sqrtm(matrix)
        result = result[0] if isinstance(result, tuple) else result
        failed = np.full_like(result, np.nan)
        out = failed if len(calls) % 2 == 1 else result
        return (out, 0.0) if kwargs.get("disp") is False else out

    rng = np.random.default_rng(3)
    _, mu1, sigma1 = _gaussian_stats(rng, 200, 32, 0.5)
    _, mu2, sigma2 = _gaussian_stats(rng, 200, 32, 0.6)
    monkeypatch.setattr(scipy.linalg, "sqrtm", failing_first)
    reference = calculate_frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-3)
    ours = frechet_distance(mu1, sigma1, mu2, sigma2, method="sqrtm", eps=1e-3)
    assert len(calls) == 4  # each: one failed call, one regularised call
    np.testing.assert_allclose(calls[3], (sigma1 + 1e-3 * np.eye(32)) @ (sigma2 + 1e-3 * np.eye(32)))
    assert ours == pytest.approx(reference, rel=1e-9)
    unregularised = frechet_distance(mu1, sigma1, mu2, sigma2, method="eigh")
    assert ours != pytest.approx(unregularised, rel=1e-9)  # the offset really changed the covariances


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"mu1 \(3,\).*sigma2 \(4, 4\)"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
