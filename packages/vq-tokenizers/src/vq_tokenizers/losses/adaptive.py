"""Adaptive weight of the GAN term (Esser et al., taming-transformers eq. 7).

The generator's adversarial loss is scaled so its gradient at the decoder's last layer has the same
norm as the reconstruction loss's gradient there; the published configs multiply that ratio by a gain
(0.8 in taming, 0.75 in the ``aglwg075`` setups).
"""

from __future__ import annotations

import torch

ADAPTIVE_EPS = 1e-4
ADAPTIVE_MAX = 1e4


def adaptive_generator_weight(
    rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor, gain: float = 1.0
) -> torch.Tensor:
    """``gain * clamp(||d rec/d W|| / (||d g/d W|| + 1e-4), 0, 1e4)``, detached, for ``W = last_layer``."""
    (rec_grad,) = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)
    (g_grad,) = torch.autograd.grad(g_loss, last_layer, retain_graph=True)
    ratio = rec_grad.float().norm() / (g_grad.float().norm() + ADAPTIVE_EPS)
    return ratio.clamp(0.0, ADAPTIVE_MAX).detach() * gain
