"""Kernel Inception Distance (Binkowski et al. 2018): unbiased MMD^2 with a cubic polynomial kernel.

``k(x, y) = (x.y / D + 1)^3`` on the 2048-d pool features.  The estimate is averaged over
``subsets`` random pairs of subsets of ``subset_size`` points (100 x 1000 by default, as
torch-fidelity and the MMD-GAN code), drawn without replacement by ``numpy.random.RandomState(seed)``
- for each subset first from the samples, then from the reference - so that with torch-fidelity's
seed (2020) and the same features the subsets, and the result, are torch-fidelity's.  Sums in float64.
"""

from __future__ import annotations

import numpy as np

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_SEED = 2020  # torch-fidelity's rng_seed


def polynomial_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between two equal-sized sets under ``(x.y / D + 1)^3`` (diagonals of K_xx, K_yy left out)."""
    m, dim = x.shape
    k_xx = (x @ x.T / dim + 1) ** 3
    k_yy = (y @ y.T / dim + 1) ** 3
    k_xy = (x @ y.T / dim + 1) ** 3
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    samples: np.ndarray,
    reference: np.ndarray,
    *,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = KID_SEED,
) -> tuple[float, float, int]:
    """(mean, std over subsets, subset size used) of KID; the size shrinks to the smaller set when needed."""
    size = min(subset_size, len(samples), len(reference))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples and 2 reference images, got {len(samples)} and {len(reference)}")
    rng = np.random.RandomState(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = np.asarray(samples[rng.choice(len(samples), size, replace=False)], dtype=np.float64)
        y = np.asarray(reference[rng.choice(len(reference), size, replace=False)], dtype=np.float64)
        values[i] = polynomial_mmd2(x, y)
    return float(values.mean()), float(values.std()), size
