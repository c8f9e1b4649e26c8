"""Shapes and precision shared by every quantizer.

Quantizers accept channel-first maps (B, C, H, W) (or any (B, C, ...)) and flat vectors (N, C).
They work on a flat fp32 (N, C) view and put the result back in the input's layout; autocast is
switched off inside so bf16 training never rounds distances or code lookups.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def flatten_channels(x: Tensor, channels: int) -> tuple[Tensor, tuple[int, ...]]:
    """(B, C, *S) or (N, C) -> ((B*prod(S), C), spatial shape to restore with :func:`restore_channels`)."""
    if x.ndim < 2 or x.shape[1] != channels:
        raise ValueError(f"expected (N, {channels}) or (B, {channels}, ...) input, got shape {tuple(x.shape)}")
    if x.ndim == 2:
        return x, (x.shape[0],)
    lead = (x.shape[0], *x.shape[2:])
    return x.movedim(1, -1).reshape(-1, channels), lead


def restore_channels(flat: Tensor, lead: tuple[int, ...]) -> Tensor:
    """Inverse of :func:`flatten_channels` for a (N, C) result."""
    if len(lead) == 1:
        return flat
    return flat.reshape(*lead, flat.shape[-1]).movedim(-1, 1)


def restore_indices(indices: Tensor, lead: tuple[int, ...]) -> Tensor:
    return indices.reshape(lead)


def flatten_mask(mask: Tensor, lead: tuple[int, ...]) -> Tensor:
    """A padding mask shaped like the indices (``lead``) -> flat bool (N,); True marks a real position."""
    if tuple(mask.shape) != tuple(lead):
        raise ValueError(f"mask must have the indices' shape {tuple(lead)}, got {tuple(mask.shape)}")
    return mask.reshape(-1).to(torch.bool)


def masked_mse(a: Tensor, b: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared error of (N, D) rows; with ``weight`` (N,) 0/1 only over the rows it keeps (0 if none)."""
    if weight is None:
        return F.mse_loss(a, b)
    per_row = ((a - b) ** 2).sum(dim=1)
    return (per_row * weight).sum() / (weight.sum() * a.shape[1]).clamp(min=1)


def codes_to_layout(codes: Tensor, index_shape: torch.Size) -> Tensor:
    """Codes looked up for indices of shape ``index_shape`` -> channel-first layout.

    Indices (N,) give (N, C); indices (B, *S) give (B, C, *S).
    """
    if len(index_shape) <= 1:
        return codes.reshape(-1, codes.shape[-1])
    return codes.reshape(*index_shape, codes.shape[-1]).movedim(-1, 1)


@contextlib.contextmanager
def full_precision(x: Tensor) -> Iterator[None]:
    """Disable autocast for the device type of ``x`` (quantizer math stays fp32 under bf16 autocast)."""
    if x.device.type not in ("cpu", "cuda", "xpu", "mps"):  # meta tensors: nothing to switch off
        yield
        return
    with torch.autocast(device_type=x.device.type, enabled=False):
        yield


def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_(t: Tensor) -> Tensor:
    """Sum ``t`` in place over all ranks when torch.distributed runs (no-op in one process)."""
    if distributed():
        dist.all_reduce(t)
    return t


def broadcast_(t: Tensor, src: int = 0) -> Tensor:
    """Make every rank hold rank ``src``'s ``t`` (codebook re-initialisations must agree across ranks)."""
    if distributed():
        dist.broadcast(t, src)
    return t
