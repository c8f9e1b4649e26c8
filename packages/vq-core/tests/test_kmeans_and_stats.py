"""k-means against scikit-learn, and codebook statistics against scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from sklearn.cluster import KMeans

from vq_core import CodebookUsage, MiniBatchKMeans, inertia, kmeans


@pytest.fixture(scope="module")
def blobs() -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((12, 6)) * 6
    return (centers[rng.integers(12, size=3000)] + rng.standard_normal((3000, 6))).astype(np.float32)


def test_kmeans_matches_sklearn_inertia(blobs: np.ndarray) -> None:
    centers, assign = kmeans(torch.from_numpy(blobs), 12, iters=50, seed=0)
    ours = inertia(torch.from_numpy(blobs), centers)
    ref = KMeans(12, n_init=4, random_state=0).fit(blobs)
    assert ours <= 1.02 * ref.inertia_ / len(blobs)
    assert torch.equal(assign, torch.cdist(torch.from_numpy(blobs), centers).argmin(1))


def test_kmeans_is_deterministic_by_seed(blobs: np.ndarray) -> None:
    x = torch.from_numpy(blobs)
    assert torch.equal(kmeans(x, 5, seed=3)[0], kmeans(x, 5, seed=3)[0])


def test_cosine_kmeans_gives_unit_centroids(blobs: np.ndarray) -> None:
    centers, _ = kmeans(torch.from_numpy(blobs), 8, metric="cosine", seed=0)
    np.testing.assert_allclose(centers.norm(dim=1).numpy(), 1.0, rtol=1e-5)


def test_minibatch_kmeans_streams_to_a_good_solution(blobs: np.ndarray) -> None:
    km = MiniBatchKMeans(12, seed=0)
    for _ in range(3):
        for chunk in np.array_split(blobs, 10):
            km.partial_fit(torch.from_numpy(chunk))
    ref = KMeans(12, n_init=4, random_state=0).fit(blobs)
    assert inertia(torch.from_numpy(blobs), km.centroids) <= 1.02 * ref.inertia_ / len(blobs)
    assert torch.equal(km.predict(torch.from_numpy(blobs[:10])), torch.cdist(torch.from_numpy(blobs[:10]), km.centroids).argmin(1))


def test_kmeans_refuses_fewer_points_than_clusters() -> None:
    with pytest.raises(ValueError, match="at least k=10"):
        kmeans(torch.randn(5, 2), 10)


def test_usage_entropy_perplexity_against_scipy() -> None:
    rng = np.random.default_rng(0)
    usage = CodebookUsage(50)
    ids = [rng.zipf(1.5, size=(4, 7, 7)) % 40 for _ in range(5)]
    for batch in ids:
        usage.update(torch.from_numpy(batch))
    counts = np.bincount(np.concatenate([b.ravel() for b in ids]), minlength=50)
    assert np.array_equal(usage.counts.numpy(), counts)
    assert usage.usage == (counts > 0).sum() / 50 and usage.total == counts.sum()
    assert math.isclose(usage.entropy, scipy_entropy(counts), rel_tol=1e-12)
    assert math.isclose(usage.perplexity, math.exp(scipy_entropy(counts)), rel_tol=1e-12)


def test_usage_refuses_out_of_range_ids() -> None:
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        CodebookUsage(8).update(torch.tensor([1, 8]))
