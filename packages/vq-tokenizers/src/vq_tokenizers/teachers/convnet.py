"""A small CNN image classifier whose convolutional trunk is a teacher (the digits study's understanding model).

``forward`` returns the trunk's last feature map (B, C, S/4, S/4) - what :class:`ModuleTeacher` reads
as patch features - and :meth:`ConvNetClassifier.logits` adds the classification head (global average
pool + linear).  :func:`fit_classifier` trains it with cross entropy on labelled images, so a study can
train its own understanding model in the same run and hand it to VQ-KD / Cluster via
:func:`~vq_tokenizers.teachers.module.save_module_teacher`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class ConvNetClassifier(nn.Module):
    """conv3x3 -> [conv3x3 stride 2] x len(channels) trunk (GELU), then pool + linear for ``num_classes``."""

    def __init__(self, channels: Sequence[int] = (32, 64), num_classes: int = 10, stem: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, stem, 3, padding=1), nn.GELU()]
        width = stem
        for out in channels:
            layers += [nn.Conv2d(width, out, 3, stride=2, padding=1), nn.GroupNorm(1, out), nn.GELU()]
            width = out
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(width, num_classes)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalised pixels (B, 3, S, S) -> feature map (B, C, S / 2^len(channels), ...)."""
        return self.trunk(pixels)

    def logits(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(pixels).mean(dim=(2, 3)))


def fit_classifier(
    model: ConvNetClassifier,
    pixels: torch.Tensor,
    labels: torch.Tensor,
    *,
    steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> float:
    """Train on normalised pixels (N, 3, S, S) and labels (N,) with AdamW + cosine decay; returns the
    final training accuracy.  Seeded: the same call gives the same weights."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(pixels), (batch_size,), generator=generator)
        loss = F.cross_entropy(model.logits(pixels[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    with torch.no_grad():
        return float((model.logits(pixels).argmax(1) == labels).float().mean())
