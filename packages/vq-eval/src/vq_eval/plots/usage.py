"""Codebook usage picture: codes sorted by frequency, and the histogram of per-code counts."""

from __future__ import annotations

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def codebook_usage_figure(counts: torch.Tensor | np.ndarray) -> Figure:
    """Two panels from per-code token counts (K,).

    Left: each code's share of all tokens, codes sorted from most to least used, against the uniform
    share 1/K (a healthy codebook is a flat curve near it; a collapsed one falls off a cliff).
    Right: how many codes were used how often (log-spaced bins), with unused codes counted apart.
    """
    counts = np.asarray(torch.as_tensor(counts).detach().cpu(), dtype=np.float64).reshape(-1)
    size, total = counts.size, counts.sum()
    if total <= 0:
        raise ValueError("codebook_usage_figure got no tokens (all counts are zero)")
    used = int((counts > 0).sum())
    figure = Figure(figsize=(10, 3.6))
    left, right = figure.subplots(1, 2)

    share = np.sort(counts)[::-1] / total
    ranks = np.arange(1, size + 1)
    left.plot(ranks, np.where(share > 0, share, np.nan), color="tab:blue", label="share of tokens")
    left.axhline(1 / size, color="tab:gray", linestyle="--", label=f"uniform 1/{size}")
    if used < size:
        left.axvline(used, color="tab:red", linestyle=":", label=f"{size - used} unused")
    left.set_yscale("log")
    left.set_xlabel("code rank (most used first)")
    left.set_ylabel("share of tokens")
    left.set_title(f"usage {used}/{size} codes ({used / size:.1%})", fontsize=10)
    left.legend(fontsize=8)

    positive = counts[counts > 0]
    bins = np.unique(np.geomspace(1, positive.max() + 1, num=min(40, int(positive.max()) + 1)).round())
    right.hist(positive, bins=bins, color="tab:blue")
    right.set_xscale("log")
    right.set_xlabel("tokens per code")
    right.set_ylabel("codes")
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_title(f"{int(total)} tokens; {size - used} codes never used", fontsize=10)
    figure.tight_layout()
    return figure
