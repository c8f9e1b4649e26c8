"""k-means for codebook initialisation and the Cluster tokenizer: k-means++ seeding, Lloyd, mini-batch.

Every assignment goes through :func:`vq_core.distance.nearest_code` (blocked ``addmm`` kernel), so
memory is bounded by the block size and not by ``N x K``.  ``metric="cosine"`` is spherical
k-means: points and centroids are l2-normalised and a centroid is the normalised mean of its points.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from vq_core.distance import Metric, nearest_code


def _prepare(x: Tensor, metric: Metric) -> Tensor:
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"k-means needs a non-empty (N, D) matrix, got shape {tuple(x.shape)}")
    x = x.detach().float() if x.dtype != torch.float64 else x.detach()
    return F.normalize(x, dim=1) if metric == "cosine" else x


def _point_distance(x: Tensor, center: Tensor, metric: Metric) -> Tensor:
    if metric == "cosine":
        return (1 - x @ center).clamp_(min=0)
    diff = x - center
    return torch.einsum("nd,nd->n", diff, diff)


def kmeans_plus_plus(x: Tensor, k: int, *, metric: Metric = "l2", generator: torch.Generator | None = None) -> Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007; the greedy variant scikit-learn uses):
    ``2 + log(k)`` candidates are drawn with probability proportional to the distance to the nearest
    centre so far, and the one that lowers the total distance most is kept.  Needs ``k`` rows."""
    x = _prepare(x, metric)
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means++ needs at least k={k} points, got {n}")
    trials = 2 + int(math.log(k))
    first = int(torch.randint(n, (1,), generator=generator))
    centers = x.new_empty(k, x.shape[1])
    centers[0] = x[first]
    closest = _point_distance(x, centers[0], metric)
    for i in range(1, k):
        total = closest.sum()
        if not torch.isfinite(total) or total <= 0:  # every point sits on a centre: any point will do
            picks = torch.randint(n, (trials,), generator=generator)
        else:
            picks = torch.multinomial((closest / total).float(), trials, replacement=True, generator=generator)
        candidates = torch.stack([torch.minimum(closest, _point_distance(x, x[p], metric)) for p in picks])
        best = int(candidates.sum(dim=1).argmin())
        centers[i] = x[picks[best]]
        closest = candidates[best]
    return centers


def _update(x: Tensor, assign: Tensor, centers: Tensor, metric: Metric) -> tuple[Tensor, Tensor]:
    """Lloyd step: every centre moves to the (normalised) mean of its points; empty centres stay."""
    k = centers.shape[0]
    sums = torch.zeros_like(centers).index_add_(0, assign, x)
    counts = torch.zeros(k, dtype=x.dtype, device=x.device).index_add_(0, assign, torch.ones_like(assign, dtype=x.dtype))
    filled = counts > 0
    new = centers.clone()
    new[filled] = sums[filled] / counts[filled, None]
    if metric == "cosine":
        new = F.normalize(new, dim=1)
    return new, counts


def kmeans(
    x: Tensor, k: int, *, metric: Metric = "l2", iters: int = 20, seed: int = 0, tol: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Centroids (k, D) and assignments (N,) of Lloyd's k-means from a k-means++ start.

    Stops early when no assignment changes (or the relative drop of inertia is below ``tol``).
    """
    x = _prepare(x, metric)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    centers = kmeans_plus_plus(x, k, metric=metric, generator=generator)
    assign = nearest_code(x, centers, metric=metric)
    for _ in range(iters):
        centers, _ = _update(x, assign, centers, metric)
        new_assign = nearest_code(x, centers, metric=metric)
        if torch.equal(new_assign, assign):
            break
        assign = new_assign
    return centers, assign


def inertia(x: Tensor, centers: Tensor, *, metric: Metric = "l2") -> float:
    """Mean distance of each point to its nearest centre (squared L2, or ``1 - cos``)."""
    x = _prepare(x, metric)
    _, dist = nearest_code(x, centers.to(x.dtype), metric=metric, return_distances=True)
    return float(dist.mean())


class MiniBatchKMeans:
    """Streaming k-means (Sculley 2010) for datasets that do not fit in memory.

    The first :meth:`partial_fit` seeds with the best (lowest inertia on that batch) of ``n_init``
    k-means++ draws, each polished by a few Lloyd steps on the batch; each later batch moves every
    centre towards the mean of its points with a per-centre learning rate ``1 / count`` (the running
    mean of all points ever assigned to it).  Centres that no point has chosen after a batch are moved
    to the batch points farthest from their centres, so no code stays dead.
    """

    def __init__(self, k: int, *, metric: Metric = "l2", seed: int = 0, n_init: int = 3) -> None:
        if k <= 0 or n_init <= 0:
            raise ValueError(f"k and n_init must be positive, got k={k}, n_init={n_init}")
        self.k, self.metric, self.n_init = k, metric, n_init
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.centroids: Tensor | None = None
        self.counts: Tensor | None = None

    @torch.no_grad()
    def partial_fit(self, x: Tensor) -> MiniBatchKMeans:
        x = _prepare(x, self.metric)
        if self.centroids is None:
            self.centroids = self._seed(x)
            self.counts = torch.zeros(self.k, dtype=torch.float64, device=x.device)
        centroids, counts = self.centroids, self.counts
        assert counts is not None
        assign, dist = nearest_code(x, centroids.to(x.dtype), metric=self.metric, return_distances=True)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x.to(centroids.dtype))
        batch_counts = torch.bincount(assign, minlength=self.k).to(counts.dtype)
        new_counts = counts + batch_counts
        hit = batch_counts > 0
        weight_old = (counts[hit] / new_counts[hit]).to(centroids.dtype)[:, None]
        centroids[hit] = centroids[hit] * weight_old + sums[hit] / new_counts[hit].to(centroids.dtype)[:, None]
        dead = (new_counts == 0).nonzero().flatten()
        if dead.numel():
            far = dist.argsort(descending=True)[: dead.numel()]
            centroids[dead[: far.numel()]] = x[far].to(centroids.dtype)
        if self.metric == "cosine":
            centroids.copy_(F.normalize(centroids, dim=1))
        self.counts = new_counts
        return self

    def _seed(self, x: Tensor) -> Tensor:
        best, best_inertia = None, float("inf")
        for _ in range(self.n_init):
            seed = int(torch.randint(2**31, (1,), generator=self.generator))
            centers, _ = kmeans(x, self.k, metric=self.metric, iters=5, seed=seed)
            score = inertia(x, centers, metric=self.metric)
            if score < best_inertia:
                best, best_inertia = centers, score
        assert best is not None
        return best

    def predict(self, x: Tensor) -> Tensor:
        if self.centroids is None:
            raise RuntimeError("MiniBatchKMeans.predict before any partial_fit")
        return nearest_code(_prepare(x, self.metric), self.centroids, metric=self.metric)
