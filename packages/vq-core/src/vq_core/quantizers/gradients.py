"""Gradient estimators for the non-differentiable code lookup ``x -> q`` (``q`` the chosen code).

Each returns a tensor whose value is ``q`` and whose gradient to ``x`` (and, for DiVeQ, to ``q``)
is the estimator's:

* :func:`straight_through` (VQ-VAE): the gradient passes to ``x`` unchanged.
* :func:`rotation_trick` (Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation
  Trick", eq. 4.2): the gradient to ``x`` is turned by the rotation that maps ``x``'s direction onto
  ``q``'s and scaled by ``|q| / |x|``, so it carries the angle and length of the quantization error.
  The rotation and scale are constants of the backward pass; the codebook gets no gradient here.
* :func:`diveq` (DiVeQ, Vali et al.): ``q = x + |q - x| * d`` with ``d`` the (noised, detached)
  direction of the error, so ``q`` is a differentiable function of both ``x`` and the code and the
  codebook learns from the task loss without a codebook loss.

The forward value of the first two is ``q`` exactly (not a rounded re-computation of it), so the
output of a training step equals ``dequantize(indices)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-6


def straight_through(x: Tensor, q: Tensor) -> Tensor:
    """Value ``q``, gradient identity to ``x`` (none to ``q``)."""
    return x + (q - x).detach()


def rotation_trick(x: Tensor, q: Tensor) -> Tensor:
    """Value ``q``; d/dx is ``|q|/|x| * R^T`` with ``R`` the rotation from ``x/|x|`` to ``q/|q|`` (rows).

    With ``u = x/|x|``, ``v = q/|q|`` and ``w = (u + v)/|u + v|`` the Householder-pair rotation is
    ``R = I - 2 w w^T + 2 v u^T``; it maps ``u`` to ``v`` and fixes everything orthogonal to both.
    """
    x_norm = x.norm(dim=-1, keepdim=True).clamp(min=_EPS)
    q_norm = q.norm(dim=-1, keepdim=True).clamp(min=_EPS)
    u = (x / x_norm).detach()
    v = (q / q_norm).detach()
    w = F.normalize(u + v, dim=-1, eps=_EPS).detach()
    rotated = x - 2 * (x * w).sum(-1, keepdim=True) * w + 2 * (x * u).sum(-1, keepdim=True) * v
    rotated = rotated * (q_norm / x_norm).detach()
    return q.detach() + (rotated - rotated.detach())


def diveq(x: Tensor, q: Tensor, variance: float = 5e-3) -> Tensor:
    """``x + |q - x| * normalize(q - x + sqrt(variance) * noise)`` with the direction detached.

    The value is ``q`` up to the direction noise (exactly ``q`` when ``variance`` is 0, up to rounding).
    """
    error = q - x
    direction = error.detach()
    if variance > 0:
        direction = direction + math.sqrt(variance) * torch.randn_like(direction)
    return x + F.normalize(direction, dim=-1, eps=_EPS) * error.norm(dim=-1, keepdim=True)

