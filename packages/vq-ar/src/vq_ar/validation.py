"""Validation of an AR model on real token sequences, without any image metric.

Two checks, as the original system runs them during training:

* teacher-forced next-token loss and accuracy (top-1 and top-5) over a token set — how well the
  model predicts each real token given the real prefix;
* half-prefix completion: give the first half of a real image's tokens, sample the second half, and
  report how many sampled tokens equal the real ones (decoded side by side with the originals, it
  shows whether the model continues structure across the cut).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from vq_ar.data import TokenSet
from vq_ar.model import ARTransformer
from vq_ar.sampling import SamplingConfig, generate


@torch.no_grad()
def teacher_forced_metrics(
    model: ARTransformer, token_set: TokenSet, *, batch_size: int = 64, max_samples: int | None = None
) -> dict[str, float]:
    """Mean loss, perplexity, top-1 and top-5 token accuracy with the true class and true prefixes."""
    device = model.tok_embeddings.weight.device
    count = token_set.num_samples if max_samples is None else min(max_samples, token_set.num_samples)
    was_training = model.training
    model.eval()
    totals = {"loss": 0.0, "token_acc": 0.0, "top5_acc": 0.0}
    tokens_seen = 0
    try:
        for first in range(0, count, batch_size):
            tokens = torch.from_numpy(token_set.tokens[first : first + batch_size, 0].astype(np.int64)).to(device)
            labels = torch.from_numpy(token_set.labels[first : first + batch_size]).to(device)
            logits = model(labels, tokens[:, :-1])
            n = tokens.numel()
            totals["loss"] += F.cross_entropy(logits.flatten(0, 1), tokens.flatten(), reduction="sum").item()
            totals["token_acc"] += (logits.argmax(-1) == tokens).sum().item()
            top5 = logits.topk(min(5, logits.shape[-1]), dim=-1).indices
            totals["top5_acc"] += (top5 == tokens[..., None]).any(-1).sum().item()
            tokens_seen += n
    finally:
        model.train(was_training)
    metrics = {k: v / tokens_seen for k, v in totals.items()}
    metrics["perplexity"] = math.exp(metrics["loss"])
    metrics["num_samples"] = count
    return metrics


def complete_half(
    model: ARTransformer,
    tokens: torch.Tensor,
    labels: torch.Tensor,
    *,
    sampling: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Keep the first ``seq_len // 2`` tokens (B, seq_len) of real images and sample the rest."""
    half = model.seq_len // 2
    return generate(model, labels, sampling=sampling, generator=generator, prefix=tokens[:, :half])


def completion_match(completed: torch.Tensor, truth: torch.Tensor, prefix_len: int) -> float:
    """Fraction of sampled (second-part) tokens equal to the real ones."""
    return (completed[:, prefix_len:] == truth[:, prefix_len:].to(completed.device)).float().mean().item()
