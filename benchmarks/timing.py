"""Wall-clock timing shared by the benchmark scripts (one definition, so every table measures alike)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")


def timed(fn: Callable[[], T], device: torch.device, repeats: int, warmup: bool = True) -> tuple[float, T | None]:
    """Best wall time of ``repeats`` runs of ``fn`` and its last result.

    One warm-up run first (allocator, kernel selection, lazy init) unless the caller knows the kernels are
    warm; CUDA is synchronised around each run so the time covers the kernels, not only their launch.
    """
    out = fn() if warmup else None
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - tic)
    return best, out
