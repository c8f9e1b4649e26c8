"""Streaming feature statistics and Inception Score: equal to two-pass numpy and mergeable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

from vq_eval import FeatureStatistics, InceptionScore


def _features(n: int = 203, dim: int = 24, offset: float = 1e4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) + offset


def test_streaming_equals_two_pass_with_large_offset() -> None:
    """Uneven batches, mean 1e4 x spread: Chan's update keeps full float64 accuracy where raw sums would not."""
    x = _features()
    stats = FeatureStatistics(x.shape[1])
    for index, batch in enumerate(np.split(x, [1, 2, 50, 51, 170])):
        stats.update(torch.from_numpy(batch) if index % 2 else batch)  # float64 tensors and arrays alike
    expected = x
    assert stats.count == len(x)
    np.testing.assert_allclose(stats.mean, expected.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(stats.covariance, np.cov(expected, rowvar=False), rtol=1e-9, atol=1e-9)


def test_merge_of_partials_equals_whole() -> None:
    x = _features(seed=1)
    whole = FeatureStatistics(x.shape[1])
    whole.update(x)
    parts = [FeatureStatistics(x.shape[1]) for _ in range(3)]
    for part, chunk in zip(parts, np.split(x, [7, 120])):
        part.update(chunk)
    merged = parts[0].merge(parts[1]).merge(FeatureStatistics(x.shape[1])).merge(parts[2])
    assert merged.count == whole.count
    np.testing.assert_allclose(merged.mean, whole.mean, rtol=1e-12)
    np.testing.assert_allclose(merged.covariance, whole.covariance, rtol=1e-9, atol=1e-9)


def test_wrong_dimension_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"FeatureStatistics\(8\).*\(4, 9\)"):
        FeatureStatistics(8).update(np.zeros((4, 9)))
    with pytest.raises(ValueError, match="at least 2 samples"):
        _ = FeatureStatistics(8).covariance


def _reference_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """The textbook formula, split by split: exp(mean_x KL(p(y|x) || p(y))); sample k in split k mod splits."""
    scores = []
    for k in range(splits):
        p = softmax(logits[k::splits].astype(np.float64), axis=1)
        py = p.mean(axis=0, keepdims=True)
        scores.append(np.exp(np.mean(np.sum(p * (np.log(p) - np.log(py)), axis=1))))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_numpy_formula() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(157, 1008)).astype(np.float32)
    score = InceptionScore(10)
    for chunk in np.split(logits, [5, 64, 65, 140]):
        score.update(torch.from_numpy(chunk))
    mean, std = score.compute()
    ref_mean, ref_std = _reference_inception_score(logits, 10)
    assert mean == pytest.approx(ref_mean, rel=1e-9)
    assert std == pytest.approx(ref_std, rel=1e-7)
    assert 1.0 < mean < 1008


def test_inception_score_limits() -> None:
    """Confident, evenly spread predictions over C classes score C; identical predictions score 1."""
    confident = torch.full((40, 8), -1e4).scatter_(1, torch.arange(40).remainder(8)[:, None], 0.0)
    score = InceptionScore(splits=5)  # each split of 8 samples holds every class once
    score.update(confident)
    assert score.compute()[0] == pytest.approx(8.0, rel=1e-9)
    same = InceptionScore(splits=2)
    same.update(torch.randn(1, 8).repeat(6, 1))
    assert same.compute() == pytest.approx((1.0, 0.0), abs=1e-12)
    with pytest.raises(ValueError, match="at least 10 images"):
        score = InceptionScore(10)
        score.update(torch.randn(3, 8))
        score.compute()
