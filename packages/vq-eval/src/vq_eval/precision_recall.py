"""Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN manifolds, as ADM's evaluator computes them.

Each set of features spans a *manifold*: the union of balls around its points whose radius is the
distance to the point's k-th nearest neighbour in the same set (k = 3, the point itself not
counted).  **Precision** is the share of samples inside the reference manifold, **recall** the
share of reference points inside the sample manifold; a point on a ball's boundary is inside.

Distances are squared Euclidean, ``|a|^2 - 2 a.b + |b|^2`` by one matmul per block (squaring does
not change which ball holds a point), in float32 blocks of ``block`` rows so that 50k x 50k pairs
never sit in memory at once.  ADM first tries the same matmul in float16; float32 differs from it
only for points within float16 rounding of a boundary.
"""

from __future__ import annotations

import numpy as np
import torch

NEIGHBOURHOOD = 3  # ADM's nhood_sizes=(3,), torch-fidelity's prc_neighborhood


def _squared_distances(rows: torch.Tensor, columns: torch.Tensor, column_norms: torch.Tensor) -> torch.Tensor:
    row_norms = rows.square().sum(1, keepdim=True)
    return (row_norms - 2 * rows @ columns.T + column_norms).clamp_min_(0)


def manifold_radii(features: torch.Tensor, k: int = NEIGHBOURHOOD, *, block: int = 4096) -> torch.Tensor:
    """Squared distance of every point to its ``k``-th nearest other point of the same set (N,)."""
    if features.shape[0] <= k:
        raise ValueError(f"a k={k} manifold needs more than {k} points, got {features.shape[0]}")
    norms = features.square().sum(1)
    # index k of the sorted row: position 0 is the point itself (distance 0)
    return torch.cat(
        [_squared_distances(chunk, features, norms).kthvalue(k + 1, dim=1).values for chunk in features.split(block)]
    )


def _inside_share(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, block: int) -> float:
    """Share of ``points`` within ``radii`` (squared) of at least one of ``centres``."""
    norms = centres.square().sum(1)
    inside = [(_squared_distances(chunk, centres, norms) <= radii).any(1) for chunk in points.split(block)]
    return float(torch.cat(inside).double().mean())


def precision_recall(
    reference: np.ndarray | torch.Tensor,
    samples: np.ndarray | torch.Tensor,
    k: int = NEIGHBOURHOOD,
    *,
    block: int = 4096,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[float, float]:
    """(precision, recall) of ``samples`` (N, D) against ``reference`` (M, D) with k-NN manifolds.

    ``dtype`` float32 suits 2048-d Inception features at 50k images; small feature sets (the pixel
    judge's PCA features) use float64.
    """
    ref = torch.as_tensor(reference, dtype=dtype, device=device)
    gen = torch.as_tensor(samples, dtype=dtype, device=device)
    if ref.ndim != 2 or gen.ndim != 2 or ref.shape[1] != gen.shape[1]:
        raise ValueError(f"precision/recall need (N, D) features of one D, got {tuple(ref.shape)} and {tuple(gen.shape)}")
    ref_radii, gen_radii = manifold_radii(ref, k, block=block), manifold_radii(gen, k, block=block)
    return _inside_share(gen, ref, ref_radii, block), _inside_share(ref, gen, gen_radii, block)
