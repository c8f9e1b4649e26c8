"""Nearest-code search: the hot loop of every vector quantizer and of k-means.

For L2 the nearest code minimises ``||x||^2 - 2 x.c + ||c||^2``; ``||x||^2`` is the same for every
code of a row, so it is never computed and one ``addmm(||c||^2, x, c.T, alpha=-2)`` gives a score
whose argmin is the answer.  Cosine search is the same kernel on l2-normalised codes with a zero
bias (``argmax x.c_hat == argmin -2 x.c_hat``; ``||x||`` does not change the argmax either).

Two things make it faster than the textbook ``addmm(...).argmin(1)`` over the whole codebook:

* **Blocks that stay in cache.**  Rows of ``x`` and codes are processed in blocks whose score matrix
  (a few MiB, written into one reused buffer) fits the last-level cache, with a running min/argmin
  across code blocks.  Memory is bounded by the block, not by ``N x K``, so a 262144-entry codebook
  needs no more memory than a 1024-entry one, and no large buffer is page-faulted per call.
* **A two-level argmin.**  ``min(dim)``/``argmin`` that return indices are scalar loops on CPU, about
  15x slower than the vectorised value-only ``amin``.  Codes are taken in groups of ``GROUP``: the
  group minima come from ``amin`` over the whole block, the index-returning ``argmin`` only runs over
  the ``K/GROUP`` group minima and over the ``GROUP`` scores of the winning group.  The first group
  holding the minimum and the first code inside it give the lowest index among exact ties, i.e. the
  same answer as ``argmin`` over the whole row.

Codes are padded to a multiple of ``GROUP`` with zero rows whose bias is ``+inf`` (never chosen).
The padded, normalised codes and their bias are a :class:`PreparedCodebook`; :class:`CodebookSearch`
caches it per codebook tensor and in-place version, so eval-time search prepares a codebook once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

Metric = Literal["l2", "cosine"]
METRICS: tuple[str, ...] = ("l2", "cosine")

GROUP = 64
"""Codes per group of the two-level argmin (>= 32 keeps ``amin`` vectorised; ~sqrt(block) is best)."""
BLOCK_CODES = 2048
"""Codes per block: with ``BLOCK_ROWS`` rows the 4 MiB score block stays in cache (measured on CPU)."""
BLOCK_ROWS = 512
DEFAULT_MEMORY_BUDGET = 256 * 2**20
"""Upper bound on the search workspace in bytes; the block shrinks to fit a smaller budget."""


@dataclass(frozen=True)
class PreparedCodebook:
    """A codebook in the form the kernel wants: fp32 (or fp64) contiguous, padded to ``GROUP``.

    ``codes`` are l2-normalised for cosine; ``bias`` is ``||c||^2`` (l2) or 0 (cosine) and ``+inf``
    on the padding rows, so a padding row never wins.
    """

    codes: Tensor
    bias: Tensor
    size: int
    metric: str


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _compute_dtype(*tensors: Tensor) -> torch.dtype:
    """fp64 stays fp64 (tests against numpy); everything else (bf16, fp16, fp32) searches in fp32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


@torch.no_grad()
def prepare_codebook(codes: Tensor, metric: Metric = "l2", *, dtype: torch.dtype | None = None) -> PreparedCodebook:
    """Pad, normalise (cosine) and take ``||c||^2`` (l2) of ``codes`` (K, D) once for many searches."""
    _check_metric(metric)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise ValueError(f"codes must be a non-empty (K, D) matrix, got shape {tuple(codes.shape)}")
    dtype = dtype or _compute_dtype(codes)
    size, dim = codes.shape
    c = codes.detach().to(dtype)
    if metric == "cosine":
        c = F.normalize(c, dim=1)
    padded = -(-size // GROUP) * GROUP
    if padded != size:
        c = torch.cat([c, c.new_zeros(padded - size, dim)])
    c = c.contiguous()
    if metric == "l2":
        bias = torch.einsum("kd,kd->k", c, c)
    else:
        bias = c.new_zeros(padded)
    bias[size:] = float("inf")
    return PreparedCodebook(codes=c, bias=bias, size=size, metric=metric)


def _block_shape(n: int, k_padded: int, itemsize: int, memory_budget: int) -> tuple[int, int]:
    """(rows, codes) of one score block: cache-sized, shrunk to the budget, codes a multiple of GROUP."""
    cols = min(k_padded, BLOCK_CODES)
    rows = min(n, max(BLOCK_ROWS, (BLOCK_ROWS * BLOCK_CODES) // cols))
    budget_elems = max(memory_budget // itemsize, GROUP)
    if rows * cols > budget_elems:
        cols = max(GROUP, min(cols, budget_elems) // GROUP * GROUP)
        rows = max(1, min(rows, budget_elems // cols))
    return rows, cols


def _group_argmin(scores: Tensor, row_ids: Tensor) -> tuple[Tensor, Tensor]:
    """Row-wise (min, first argmin) of a (R, C) block, C a multiple of GROUP (see module docstring)."""
    r, c = scores.shape
    groups = scores.view(r, c // GROUP, GROUP)
    group_min = torch.amin(groups, dim=2)
    best_group = torch.argmin(group_min, dim=1)
    values = group_min.gather(1, best_group[:, None]).squeeze(1)
    within = torch.argmin(groups[row_ids[:r], best_group], dim=1)
    return values, best_group * GROUP + within


@torch.no_grad()
def search(
    x: Tensor, prepared: PreparedCodebook, *, memory_budget: int = DEFAULT_MEMORY_BUDGET
) -> tuple[Tensor, Tensor]:
    """Index (N,) of the nearest code for each row of ``x`` (N, D), and its score.

    The score is ``-2 x.c + ||c||^2`` (l2) or ``-2 x.c_hat`` (cosine): the distance up to a
    per-row constant.  Use :func:`nearest_code` with ``return_distances=True`` for true distances.
    """
    codes, bias = prepared.codes, prepared.bias
    if x.ndim != 2 or x.shape[1] != codes.shape[1]:
        raise ValueError(f"x must be (N, {codes.shape[1]}) to match the codebook, got shape {tuple(x.shape)}")
    x = x.detach().to(codes.dtype).contiguous()
    n, k_padded = x.shape[0], codes.shape[0]
    best_idx = torch.empty(n, dtype=torch.long, device=x.device)
    best_val = torch.empty(n, dtype=codes.dtype, device=x.device)
    if n == 0:
        return best_idx, best_val
    rows, cols = _block_shape(n, k_padded, codes.element_size(), memory_budget)
    buffer = torch.empty(rows * cols, dtype=codes.dtype, device=x.device)
    row_ids = torch.arange(rows, device=x.device)
    for r0 in range(0, n, rows):
        xr = x[r0 : r0 + rows]
        nr = xr.shape[0]
        run_val, run_idx = best_val[r0 : r0 + nr], best_idx[r0 : r0 + nr]
        for c0 in range(0, k_padded, cols):
            nc = min(cols, k_padded - c0)
            scores = buffer[: nr * nc].view(nr, nc)
            torch.addmm(bias[c0 : c0 + nc], xr, codes[c0 : c0 + nc].T, alpha=-2, out=scores)
            values, idx = _group_argmin(scores, row_ids)
            if c0 == 0:
                run_val.copy_(values)
                run_idx.copy_(idx)
            else:
                better = values < run_val  # strict: an earlier block wins ties, as argmin does
                run_val.copy_(torch.where(better, values, run_val))
                run_idx.copy_(torch.where(better, idx + c0, run_idx))
    # Non-finite inputs could leave a padding index; keep every index a valid code.
    return best_idx.clamp_(max=prepared.size - 1), best_val


def nearest_code(
    x: Tensor,
    codes: Tensor,
    *,
    metric: Metric = "l2",
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    return_distances: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Nearest row of ``codes`` (K, D) for every row of ``x`` (N, D) -> indices (N,) int64.

    With ``return_distances`` also the distance to it: squared euclidean (l2) or ``1 - cos`` (cosine).
    Exact ties go to the lowest index, like ``argmin``.
    """
    prepared = prepare_codebook(codes, metric, dtype=_compute_dtype(x, codes))
    idx, score = search(x, prepared, memory_budget=memory_budget)
    if not return_distances:
        return idx
    return idx, score_to_distance(x, score, metric)


def score_to_distance(x: Tensor, score: Tensor, metric: Metric) -> Tensor:
    """Turn the kernel's score back into a distance, adding the per-row term it leaves out."""
    xf = x.detach().to(score.dtype)
    if metric == "l2":
        return (score + torch.einsum("nd,nd->n", xf, xf)).clamp_(min=0)
    norm = xf.norm(dim=1).clamp_(min=torch.finfo(score.dtype).tiny)
    return 1 + score / (2 * norm)


class CodebookSearch:
    """Nearest-code search against one codebook tensor, preparing it once per in-place version.

    The cache holds the codebook tensor itself and its autograd version counter, which every
    in-place update (optimizer step, ``copy_`` under ``no_grad``, EMA update, ``load_state_dict``)
    bumps.  Writes through ``tensor.data`` bypass the counter: call :meth:`invalidate` after those.
    """

    def __init__(self, metric: Metric = "l2", *, memory_budget: int = DEFAULT_MEMORY_BUDGET) -> None:
        _check_metric(metric)
        self.metric = metric
        self.memory_budget = memory_budget
        self._source: Tensor | None = None
        self._version = -1
        self._prepared: PreparedCodebook | None = None

    def invalidate(self) -> None:
        self._source, self._version, self._prepared = None, -1, None

    def prepare(self, codes: Tensor) -> PreparedCodebook:
        if self._prepared is None or self._source is not codes or self._version != codes._version:
            self._prepared = prepare_codebook(codes, self.metric)
            self._source, self._version = codes, codes._version
        return self._prepared

    def __call__(self, x: Tensor, codes: Tensor, *, cache: bool = True) -> Tensor:
        """Indices (N,) of the nearest codes; ``cache=False`` prepares afresh (codes change every step)."""
        prepared = self.prepare(codes) if cache else prepare_codebook(codes, self.metric)
        return search(x, prepared, memory_budget=self.memory_budget)[0]
