"""Cluster codebooks fitted the seed's way: Adam on a cosine codebook with CVQ nearest-anchor updates.

magic-research/vector_quantization ``configs/cluster/{model,runner,interface}.py``: frozen teacher
features ``x`` (768-d, 16x16 at 256 px; 'strong' augmentation: RandomResizedCrop(256, scale (0.8, 1),
bicubic) + flip), a ``VQGANQuantizer`` with ``CosineDistance`` (codes initialised U(-1/K, 1/K)), the
``CodebookLoss`` ``mse(e[q], sg(x))`` only, and a ``CVQVAECallback(ema=dict(), anchor=NearestAnchor(sync=True))``
(``vq/algorithms/cvqvae``), Adam lr 5.4e-5, betas (0.5, 0.9) on the codebook, 100k iterations at
batch 256 in total.  One step, as the seed's forward runs it:

1. ``q = argmin_e (1 - cos(x, e))`` (neither side normalised in the loss; the distance normalises);
2. usage ``p <- decay * p + (1 - decay) * freq(q)`` (``p`` starts at 0; counts summed over ranks);
3. each code's anchor is its nearest feature over all ranks' batches (``d.argmin(0)``), and
   ``e <- (1 - w) e + w * anchor`` with ``w = exp(-p K 10 / (1 - decay) - 1e-3)``: unused codes jump
   onto their anchor, used ones barely move;
4. loss ``mean((e[q] - x)^2)`` on the updated codes, gradients averaged over ranks, one Adam step.

Beside the streamed k-means of :mod:`vq_tokenizers.cluster` (faster, no learning rate), which stays the
default of ``fit-cluster``; ``--method sgd`` runs this.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vq_tokenizers.teachers import Teacher

log = logging.getLogger(__name__)

ANCHOR_EPS = 1e-3  # CVQVAECallback's eps


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if _distributed():
        dist.all_reduce(t)
    return t


def nearest_anchors(x: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """For every code, the feature of highest cosine similarity over all ranks' ``x`` (NearestAnchor, sync=True)."""
    sims = F.normalize(x, dim=1) @ F.normalize(codebook, dim=1).T  # (N, K)
    best, where = sims.max(dim=0)
    anchors = x[where]
    if _distributed():
        world = dist.get_world_size()
        all_best = [torch.empty_like(best) for _ in range(world)]
        all_anchors = [torch.empty_like(anchors) for _ in range(world)]
        dist.all_gather(all_best, best.contiguous())
        dist.all_gather(all_anchors, anchors.contiguous())
        rank_of = torch.stack(all_best).argmax(dim=0)  # first rank on ties = first index of the concatenation
        anchors = torch.stack(all_anchors)[rank_of, torch.arange(codebook.shape[0], device=x.device)]
    return anchors


@torch.no_grad()
def cvq_update(
    codebook: torch.Tensor, usage: torch.Tensor, x: torch.Tensor, *, decay: float = 0.99
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steps 1-3: the codes' assignment of ``x``, the new usage EMA and the anchor-moved codebook."""
    k = codebook.shape[0]
    quant = (F.normalize(x, dim=1) @ F.normalize(codebook, dim=1).T).argmax(dim=1)
    counts = _all_reduce(torch.bincount(quant, minlength=k).to(usage.dtype))
    numel = _all_reduce(torch.tensor(float(quant.numel()), device=x.device, dtype=usage.dtype))
    usage = decay * usage + (1 - decay) * counts / numel
    weight = torch.exp(-usage[:, None] * k * 10 / (1 - decay) - ANCHOR_EPS)
    moved = (1 - weight) * codebook + weight * nearest_anchors(x, codebook)
    return quant, usage, moved


@dataclass
class SGDReport:
    """The last step's loss, and its features (all ranks) measured against the final codebook."""

    steps: int
    loss: float
    features: int
    inertia: float
    usage: float
    perplexity: float


def fit_codebook_sgd(
    teacher: Teacher,
    batches: Iterator[torch.Tensor],
    k: int,
    *,
    steps: int,
    lr: float = 5.4e-5,
    betas: tuple[float, float] = (0.5, 0.9),
    decay: float = 0.99,
    teacher_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log_every: int = 50,
) -> tuple[torch.Tensor, SGDReport]:
    """Fit a (K, D) codebook on ``teacher``'s features of this rank's image ``batches`` (see the module doc).

    Every rank must build the same initial codebook: the generator is seeded with ``seed``.
    """
    device = torch.device(device)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    init = torch.empty(k, teacher.dim).uniform_(-1.0 / k, 1.0 / k, generator=generator)  # the seed's 'vqgan' init
    codebook = torch.nn.Parameter(init.to(device))
    usage = torch.zeros(k, device=device, dtype=torch.float64)  # CVQVAECallback: probability starts at 0
    optimizer = torch.optim.Adam([codebook], lr=lr, betas=betas)
    world = dist.get_world_size() if _distributed() else 1
    loss_value, x = math.nan, None
    for step in range(1, steps + 1):
        images = next(batches).to(device)
        with torch.no_grad():
            x = teacher.features(images, teacher_size)
            x = x.reshape(-1, x.shape[-1]).float()
        quant, usage, moved = cvq_update(codebook.detach(), usage, x, decay=decay)
        with torch.no_grad():
            codebook.copy_(moved.to(codebook.dtype))
        loss = F.mse_loss(codebook[quant], x)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if world > 1:
            _all_reduce(codebook.grad).div_(world)
        optimizer.step()
        loss_value = float(_all_reduce(loss.detach().clone()) / world)
        if log_every and step % log_every == 0:
            log.info("cluster sgd step %d/%d: loss %.5f", step, steps, loss_value)
    if x is None:
        raise ValueError("cluster sgd: steps must be >= 1")
    return codebook.detach(), _measure(codebook.detach(), x, steps, loss_value)


@torch.no_grad()
def _measure(codebook: torch.Tensor, x: torch.Tensor, steps: int, loss: float) -> SGDReport:
    sims = F.normalize(x, dim=1) @ F.normalize(codebook, dim=1).T
    best, quant = sims.max(dim=1)
    counts = _all_reduce(torch.bincount(quant, minlength=codebook.shape[0]).double())
    distance = _all_reduce((1 - best).double().sum())
    probs = counts / counts.sum().clamp(min=1)
    nonzero = probs[probs > 0]
    return SGDReport(
        steps=steps, loss=loss, features=int(counts.sum()), inertia=float(distance / counts.sum().clamp(min=1)),
        usage=float((counts > 0).double().mean()), perplexity=float(torch.exp(-(nonzero * nonzero.log()).sum())),
    )
