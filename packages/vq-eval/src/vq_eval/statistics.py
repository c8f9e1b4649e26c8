"""Streaming mean and covariance of feature vectors, in float64, mergeable across workers and ranks.

FID needs the mean and covariance of 2048-d features over tens of thousands of images.  Keeping the
features would cost memory linear in the number of images; keeping raw sums of ``x x^T`` would lose
precision when the mean is large relative to the spread.  Instead each batch is reduced to
(count, mean, centred scatter) and merged with Chan et al.'s pairwise update, so memory stays
O(D^2) and the result equals the two-pass formula to float64 rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from vq_eval.distributed import all_reduce_max, all_reduce_sum, is_distributed


class FeatureStatistics:
    """Running (n, mean, scatter) of D-dimensional features; ``covariance`` is the unbiased estimate.

    ``dim`` may be left out; the first batch then sets it.

    ``merge`` combines statistics of disjoint sets (workers, shards); ``all_reduce`` does the same
    across the ranks of an initialised ``torch.distributed`` group.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.count = 0
        self._allocate(dim)

    def _allocate(self, dim: int | None) -> None:
        self.dim = dim
        self.mean = np.zeros(dim or 0, dtype=np.float64)
        self.scatter = np.zeros((dim or 0, dim or 0), dtype=np.float64)

    def update(self, features: torch.Tensor | np.ndarray) -> None:
        """Add a batch of features (B, D); without a ``dim`` the first batch sets it."""
        batch = (
            features.detach().to("cpu", torch.float64).numpy()
            if isinstance(features, torch.Tensor)
            else np.asarray(features, dtype=np.float64)
        )
        if self.dim is None and batch.ndim == 2:
            self._allocate(batch.shape[1])
        if batch.ndim != 2 or batch.shape[1] != self.dim:
            raise ValueError(f"FeatureStatistics({self.dim}) got features of shape {batch.shape}; expected (B, {self.dim})")
        if batch.shape[0] == 0:
            return
        mean = batch.mean(axis=0)
        centred = batch - mean
        self._combine(batch.shape[0], mean, centred.T @ centred)

    def merge(self, other: FeatureStatistics) -> FeatureStatistics:
        """Fold ``other`` (statistics of a disjoint set of samples) into ``self``; returns ``self``."""
        if self.dim is None:
            self._allocate(other.dim)
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        if other.count:
            self._combine(other.count, other.mean, other.scatter)
        return self

    def _combine(self, count: int, mean: np.ndarray, scatter: np.ndarray) -> None:
        total = self.count + count
        delta = mean - self.mean
        self.scatter += scatter + np.outer(delta, delta) * (self.count * count / total)
        self.mean += delta * (count / total)
        self.count = total

    def all_reduce(self) -> FeatureStatistics:
        """Replace the local statistics by those of all ranks (no-op without ``torch.distributed``).

        A max-reduction of the dimension (so a rank that saw no images can join), then two
        sum-reductions: counts and weighted means give the global mean; each rank then shifts its
        scatter to that mean (parallel-axis theorem), so the final sum is exact and stable.
        """
        if not is_distributed():
            return self
        dim = all_reduce_max(self.dim or 0)  # a rank that got no images does not know it yet
        if self.dim is None:
            self._allocate(dim)
        if dim != self.dim:
            raise ValueError(f"FeatureStatistics.all_reduce: this rank has dimension {self.dim}, another {dim}")
        sums = all_reduce_sum(np.concatenate([[self.count], self.mean * self.count]))
        total = int(round(sums[0]))
        mean = sums[1:] / max(total, 1)
        shift = self.mean - mean
        scatter = all_reduce_sum(self.scatter + self.count * np.outer(shift, shift))
        self.count, self.mean, self.scatter = total, mean, scatter
        return self

    @property
    def covariance(self) -> np.ndarray:
        """Unbiased (n - 1) covariance, as ``np.cov(features, rowvar=False)`` gives."""
        if self.count < 2:
            raise ValueError(f"covariance needs at least 2 samples, have {self.count}")
        return self.scatter / (self.count - 1)
