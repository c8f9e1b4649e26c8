"""Linear probe of a frozen tokenizer: how much class information its *quantized* codes keep.

The seed (magic-research/vector_quantization ``configs/ic``) ties a tokenizer's generation quality to
this "understanding" score and measures it so:

* features - the tokenizer encodes, the chosen codes are looked up (``dequantize``: the vectors the
  decoder receives) and averaged over the token grid (``einops.reduce(z, 'b h w c -> b c', 'mean')``);
* head - ``BatchNorm1d(D, eps=1e-6, affine=False)`` then ``Linear(D, classes)`` (weights
  truncated-normal, std 0.01; bias 0), cross-entropy;
* schedule - LARS (momentum 0.9, trust coefficient 0.001, weight decay 0; 1-D parameters are
  updated without the trust ratio), lr 1.6 with cosine annealing to 0 over 30,000 steps, batch 512
  (``configs/ic/runner.py``, ``interface.py``, ``vq/tasks/image_classification/optimizers.py``);
* report - top-1 and top-5 accuracy on the validation split.

:data:`SEED_SCHEDULE` holds those values and is the default; :data:`CPU_SMALL` (same optimizer and
lr, 2,000 steps of 64) is the preset for tests and the demo.  It cannot be much shorter: LARS moves a
weight matrix by ~``lr * trust`` (0.16 %) of its norm per step, so a head initialised at std 0.01
needs a few thousand steps before its logits outgrow the plain-SGD bias.  One deliberate difference: the seed recomputes features of freshly augmented
("strong" augmentation) crops every step, while this probe encodes each training image once,
centre-cropped, and trains the head on the cached features - orders of magnitude cheaper, and
the head is all that learns.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from vq_core import progress


class ProbeConfig(BaseModel):
    """The probe's schedule; the defaults are the seed's full-scale ``configs/ic`` values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = Field(30_000, gt=0, description="optimizer steps (seed: iters=30_000)")
    batch_size: int = Field(512, gt=0, description="training batch (seed: batch_sizes[0]=512)")
    lr: float = Field(1.6, gt=0, description="LARS base learning rate, cosine-annealed to 0 (seed: 1.6)")
    momentum: float = Field(0.9, ge=0, lt=1, description="LARS momentum (seed default 0.9)")
    weight_decay: float = Field(0.0, ge=0, description="LARS weight decay (seed default 0)")
    trust_coefficient: float = Field(0.001, gt=0, description="LARS trust coefficient (seed default 0.001)")
    seed: int = 0


SEED_SCHEDULE = ProbeConfig()
CPU_SMALL = ProbeConfig(steps=2000, batch_size=64)  # same optimizer and lr; seconds on a CPU (tests, demo)
PRESETS = {"seed": SEED_SCHEDULE, "cpu-small": CPU_SMALL}


class Lookup(Protocol):
    """What the probe needs of a tokenizer: images -> token ids -> the code vectors (B, D, h, w)."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor: ...


class LARS(torch.optim.Optimizer):
    """Layer-wise adaptive rate scaling (You et al. 2017) in the seed's form.

    For a weight matrix the step is ``lr * trust * |p| / |g + wd p|`` times the (momentum-averaged)
    gradient direction, so every layer moves by the same relative amount; vectors (biases) take
    plain momentum SGD steps.
    """

    def __init__(self, params: Iterable[nn.Parameter], lr: float, momentum: float, weight_decay: float, trust_coefficient: float) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay, "trust": trust_coefficient})

    @torch.no_grad()
    def step(self) -> None:  # type: ignore[override]
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                update = p.grad
                if p.ndim > 1:
                    update = update.add(p, alpha=group["weight_decay"])
                    p_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
                    ratio = torch.where((p_norm > 0) & (u_norm > 0), group["trust"] * p_norm / u_norm, torch.ones_like(p_norm))
                    update = update * ratio
                buffer = self.state[p].setdefault("momentum", torch.zeros_like(p))
                buffer.mul_(group["momentum"]).add_(update)
                p.add_(buffer, alpha=-group["lr"])


@torch.inference_mode()
def probe_features(
    tokenizer: Lookup, batches: Iterable[tuple[torch.Tensor, torch.Tensor]], *, device: str | torch.device = "cpu",
    show_progress: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid-averaged quantized codes (N, D) and labels (N,) of every (images, labels) batch."""
    features, labels = [], []
    for images, targets in progress(batches, enabled=show_progress, desc="probe features", unit="batch"):
        codes = tokenizer.dequantize(tokenizer.encode(images.to(device)))
        features.append(codes.float().mean(dim=(2, 3)).cpu())
        labels.append(torch.as_tensor(targets).long().cpu())
    if not features:
        raise ValueError("probe: no images")
    return torch.cat(features), torch.cat(labels)


def train_probe(features: torch.Tensor, labels: torch.Tensor, num_classes: int, config: ProbeConfig = SEED_SCHEDULE) -> nn.Sequential:
    """Fit the seed's BatchNorm + Linear head on frozen features with LARS and a cosine schedule."""
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    head = nn.Sequential(nn.BatchNorm1d(features.shape[1], eps=1e-6, affine=False), nn.Linear(features.shape[1], num_classes))
    nn.init.trunc_normal_(head[1].weight, std=0.01)
    nn.init.zeros_(head[1].bias)
    optimizer = LARS(head.parameters(), config.lr, config.momentum, config.weight_decay, config.trust_coefficient)
    loss_fn = nn.CrossEntropyLoss()
    head.train()
    for step in range(config.steps):
        for group in optimizer.param_groups:  # CosineAnnealingLR(T_max=steps), stepped every iteration
            group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / config.steps))
        index = torch.randint(0, features.shape[0], (min(config.batch_size, features.shape[0]),), generator=generator)
        optimizer.zero_grad(set_to_none=True)
        loss_fn(head(features[index]), labels[index]).backward()
        optimizer.step()
    return head.eval()


@torch.inference_mode()
def top_k_accuracy(head: nn.Module, features: torch.Tensor, labels: torch.Tensor, k: int) -> float:
    logits = head(features)
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices
    return float((top == labels[:, None]).any(1).double().mean())


def linear_probe(
    tokenizer: Lookup,
    train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    val_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    num_classes: int | None = None,
    config: ProbeConfig = SEED_SCHEDULE,
    device: str | torch.device = "cpu",
    show_progress: bool | None = None,
) -> dict[str, Any]:
    """Top-1/top-5 validation accuracy of a linear head on the frozen tokenizer's quantized codes."""
    train_x, train_y = probe_features(tokenizer, train_batches, device=device, show_progress=show_progress)
    val_x, val_y = probe_features(tokenizer, val_batches, device=device, show_progress=show_progress)
    classes = num_classes or int(max(train_y.max(), val_y.max())) + 1
    head = train_probe(train_x, train_y, classes, config)
    return {
        "probe_top1": top_k_accuracy(head, val_x, val_y, 1),
        "probe_top5": top_k_accuracy(head, val_x, val_y, 5),
        "probe_train_top1": top_k_accuracy(head, train_x, train_y, 1),
        "num_train": int(train_x.shape[0]),
        "num_val": int(val_x.shape[0]),
        "num_classes": classes,
        "feature_dim": int(train_x.shape[1]),
        "features": "dequantized codes averaged over the token grid (seed configs/ic)",
        "schedule": config.model_dump(),
        "chance_top1": float(np.max(np.bincount(val_y.numpy(), minlength=classes)) / len(val_y)),
    }
