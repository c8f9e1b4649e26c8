"""Codebook usage metrics of a tokenizer, from vq-core's streaming :class:`~vq_core.CodebookUsage`.

The counting itself (bincount over token ids, entropy, perplexity) lives in vq-core, next to the
quantizers that report it during training, so training logs and evaluation reports cannot drift
apart; this module only names the numbers for reports.
"""

from __future__ import annotations

from typing import Any

import torch


def new_usage(codebook_size: int) -> Any:
    """A fresh ``vq_core.CodebookUsage`` (imported here so the rest of vq-eval does not need it)."""
    from vq_core import CodebookUsage

    return CodebookUsage(codebook_size)


def usage_summary(usage: Any) -> dict[str, float | int]:
    """Report fields of a ``CodebookUsage``: size, codes used, used fraction, entropy (nats), perplexity."""
    counts = torch.as_tensor(usage.counts)
    return {
        "codebook_size": int(counts.numel()),
        "codes_used": int((counts > 0).sum()),
        "codebook_usage": float(usage.usage),
        "codebook_entropy": float(usage.entropy),
        "codebook_perplexity": float(usage.perplexity),
    }
