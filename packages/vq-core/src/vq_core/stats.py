"""Codebook statistics: which codes a tokenizer uses, streamed over any number of batches.

Usage (fraction of codes hit at least once), entropy of the code distribution in nats and
perplexity = exp(entropy) are the numbers papers report for codebook collapse; entropy is kept
separately because perplexity saturates at the codebook size while entropy stays additive.
Counting is one ``bincount`` per batch into an int64 histogram, so memory is O(K), never O(N x K).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor


def counts_entropy(counts: Tensor) -> float:
    """Entropy in nats of the distribution proportional to ``counts`` (0 for an empty histogram)."""
    total = float(counts.sum())
    if total <= 0:
        return 0.0
    p = counts[counts > 0].double() / total
    return float(-(p * p.log()).sum())


class CodebookUsage:
    """Streaming histogram of code ids for a codebook of ``codebook_size`` entries."""

    def __init__(self, codebook_size: int) -> None:
        if codebook_size <= 0:
            raise ValueError(f"codebook_size must be positive, got {codebook_size}")
        self.codebook_size = codebook_size
        self.counts = torch.zeros(codebook_size, dtype=torch.int64)

    def update(self, indices: Tensor) -> None:
        """Count every id in ``indices`` (any shape, any integer dtype, any device)."""
        flat = torch.as_tensor(indices).detach().reshape(-1).to("cpu", torch.int64)
        if flat.numel() == 0:
            return
        low, high = int(flat.min()), int(flat.max())
        if low < 0 or high >= self.codebook_size:
            raise ValueError(
                f"code ids must lie in [0, {self.codebook_size}), got range [{low}, {high}]; "
                "is this the right codebook size for these tokens?"
            )
        self.counts += torch.bincount(flat, minlength=self.codebook_size)

    def merge(self, other: CodebookUsage) -> None:
        """Add another histogram of the same codebook (e.g. from another worker)."""
        if other.codebook_size != self.codebook_size:
            raise ValueError(f"cannot merge usage of {other.codebook_size} codes into {self.codebook_size}")
        self.counts += other.counts

    def all_reduce(self) -> None:
        """Sum the histogram over all ranks when torch.distributed is initialised (no-op otherwise)."""
        if dist.is_available() and dist.is_initialized():
            backend_device = "cuda" if dist.get_backend() == "nccl" else "cpu"
            buf = self.counts.to(backend_device)
            dist.all_reduce(buf)
            self.counts = buf.cpu()

    def reset(self) -> None:
        self.counts.zero_()

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def used(self) -> int:
        return int((self.counts > 0).sum())

    @property
    def usage(self) -> float:
        """Fraction of the codebook used at least once."""
        return self.used / self.codebook_size

    @property
    def entropy(self) -> float:
        return counts_entropy(self.counts)

    @property
    def perplexity(self) -> float:
        return math.exp(self.entropy)

    def summary(self) -> dict[str, float | int]:
        return {
            "codebook_size": self.codebook_size,
            "codes_used": self.used,
            "usage": self.usage,
            "entropy": self.entropy,
            "perplexity": self.perplexity,
            "tokens": self.total,
        }
