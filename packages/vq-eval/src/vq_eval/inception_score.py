"""Inception Score, streamed: exp(E_x KL(p(y|x) || p(y))) averaged over splits.

Per split, ``E_x KL(p(y|x) || p(y)) = E_x[sum_y p log p] - sum_y p(y) log p(y)`` with
``p(y) = E_x p(y|x)``, so a split is summarised by its count, ``sum_x p(y|x)`` and
``sum_x sum_y p log p``: constant memory, and sums merge across ranks.  Sample ``k`` (in arrival
order, per rank) goes to split ``(k + rank) mod splits`` (the rank offset spreads ranks that see
few images over different splits); the original code chunks consecutively and
torch-fidelity chunks after a random shuffle, so split membership is a convention in all three, and
the mean agrees in expectation.

Logits are the 1008-way Inception classifier's; the original Inception Score (and torch-fidelity)
use ``pool @ W^T`` without the bias (:meth:`FIDInceptionV3.unbiased_logits`).
"""

from __future__ import annotations

import numpy as np
import torch

from vq_eval.distributed import all_reduce_max, all_reduce_sum, is_distributed, rank_and_world


class InceptionScore:
    """Accumulates class probabilities into ``splits`` interleaved splits; ``compute()`` -> (mean, std)."""

    def __init__(self, splits: int = 10) -> None:
        if splits < 1:
            raise ValueError(f"InceptionScore splits must be >= 1, got {splits}")
        self.splits = splits
        self.seen = rank_and_world()[0]  # position of the next sample in the split rotation
        self.counts = np.zeros(splits, dtype=np.float64)
        self.prob_sums: np.ndarray | None = None  # (splits, classes), sized on the first batch
        self.plogp_sums = np.zeros(splits, dtype=np.float64)

    def update(self, logits: torch.Tensor) -> None:
        """Add a batch of classifier logits (B, classes)."""
        if logits.ndim != 2:
            raise ValueError(f"InceptionScore expects logits (B, classes), got shape {tuple(logits.shape)}")
        log_p = torch.log_softmax(logits.detach().to("cpu", torch.float64), dim=1)
        p = log_p.exp()
        plogp = (p * log_p).sum(dim=1).numpy()
        if self.prob_sums is None:
            self.prob_sums = np.zeros((self.splits, logits.shape[1]), dtype=np.float64)
        elif self.prob_sums.shape[1] != logits.shape[1]:
            raise ValueError(f"InceptionScore got {logits.shape[1]} classes after {self.prob_sums.shape[1]}")
        split = (self.seen + np.arange(logits.shape[0])) % self.splits
        np.add.at(self.counts, split, 1.0)
        np.add.at(self.prob_sums, split, p.numpy())
        np.add.at(self.plogp_sums, split, plogp)
        self.seen += logits.shape[0]

    def all_reduce(self) -> InceptionScore:
        """Sum the split statistics over ranks (no-op without ``torch.distributed``)."""
        if is_distributed():
            classes = all_reduce_max(0 if self.prob_sums is None else self.prob_sums.shape[1])
            if self.prob_sums is None:  # this rank got no images
                self.prob_sums = np.zeros((self.splits, classes), dtype=np.float64)
            packed = all_reduce_sum(np.concatenate([self.counts[:, None], self.plogp_sums[:, None], self.prob_sums], axis=1))
            self.counts, self.plogp_sums, self.prob_sums = packed[:, 0].copy(), packed[:, 1].copy(), packed[:, 2:].copy()
        return self

    def compute(self) -> tuple[float, float]:
        """Mean and (population) standard deviation of the per-split scores."""
        if self.prob_sums is None or (self.counts == 0).any():
            raise ValueError(f"InceptionScore needs at least {self.splits} images (one per split), have {int(self.counts.sum())}")
        marginal = self.prob_sums / self.counts[:, None]
        marginal_entropy_term = np.where(marginal > 0, marginal * np.log(np.where(marginal > 0, marginal, 1.0)), 0.0).sum(axis=1)
        kl = self.plogp_sums / self.counts - marginal_entropy_term
        scores = np.exp(kl)
        return float(scores.mean()), float(scores.std())


ADM_SPLIT_SIZE = 5000  # guided-diffusion's compute_inception_score(split_size=5000)


def inception_score_of_logits(logits: np.ndarray | torch.Tensor, split_size: int = ADM_SPLIT_SIZE) -> tuple[float, float, int]:
    """(mean, std, number of splits) of the Inception Score over consecutive chunks of ``split_size`` samples.

    ADM's convention: 50k samples give 10 splits of 5000, fewer than 5000 give one split (the last
    chunk may be smaller).  With one split this is also torch-fidelity's ``isc_splits=1`` value.
    """
    log_p = torch.log_softmax(torch.as_tensor(logits, dtype=torch.float64), dim=1)
    scores = []
    for chunk in log_p.split(split_size):
        p = chunk.exp()
        log_marginal = torch.logsumexp(chunk, dim=0) - np.log(chunk.shape[0])
        scores.append(float(((p * (chunk - log_marginal)).sum(1).mean()).exp()))
    return float(np.mean(scores)), float(np.std(scores)), len(scores)
