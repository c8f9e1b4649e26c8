"""PatchGAN discriminator and the GAN losses of VQGAN training (hinge, non-saturating).

The layer sequence (and therefore the ``main.<index>`` parameter names) is the pix2pix
``NLayerDiscriminator`` that taming-transformers and LlamaGen train, so their discriminator weights
load unchanged for fine-tuning.  ``n_layers`` is the depth the published configs vary
(3 by default, 2 in the ``dd2`` setups).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NLayerDiscriminator(nn.Module):
    """Conv(4x4, stride 2) stack with BatchNorm + LeakyReLU(0.2), ending in a 1-channel logit map."""

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"discriminator n_layers must be >= 1, got {n_layers}")
        widths = [ndf * min(2**i, 8) for i in range(n_layers + 1)]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        for i in range(1, n_layers + 1):
            stride = 2 if i < n_layers else 1  # the last hidden conv keeps the resolution
            layers += [
                nn.Conv2d(widths[i - 1], widths[i], 4, stride=stride, padding=1, bias=False),
                nn.BatchNorm2d(widths[i]),
                nn.LeakyReLU(0.2, True),
            ]
        layers.append(nn.Conv2d(widths[-1], 1, 4, stride=1, padding=1))
        self.main = nn.Sequential(*layers)
        self.apply(_init_weights)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.main(images)


def _init_weights(module: nn.Module) -> None:
    """DCGAN initialisation, as in the published VQGAN discriminators."""
    if isinstance(module, nn.Conv2d):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def hinge_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (E[relu(1 - D(x))] + E[relu(1 + D(G(z)))])."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def hinge_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """The generator's side of the hinge game: -E[D(G(z))]."""
    return -logits_fake.mean()


def non_saturating_d_loss(logits_real: torch.Tensor, logits_fake: torch.Tensor) -> torch.Tensor:
    """0.5 * (E[softplus(-D(x))] + E[softplus(D(G(z)))]): the original GAN's cross-entropy (LlamaGen's 'vanilla')."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def non_saturating_g_loss(logits_fake: torch.Tensor) -> torch.Tensor:
    """E[softplus(-D(G(z)))] = BCE(D(G(z)), 1): the seed's ``NonSaturatingLoss``.

    LlamaGen's ``non_saturating_gen_loss`` calls ``binary_cross_entropy_with_logits(ones, logits)``,
    arguments swapped, which equals ``-E[D(G(z))] + log(1 + e)``: the hinge generator loss plus a
    constant, with the same gradient.  A LlamaGen ``--gen-loss non-saturating`` run is therefore
    reproduced by ``generator_loss='hinge'``.
    """
    return F.softplus(-logits_fake).mean()
