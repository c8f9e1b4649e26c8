"""R1 gradient penalty (Mescheder et al. 2018, https://arxiv.org/abs/1801.04406), the seed's ``R1GradientPenalty``.

``E_x ||d sum D(x) / dx||^2`` on real images, with a graph (``create_graph``) so the discriminator's
optimizer step differentiates it.  D runs in eval mode for it, as in the seed, so BatchNorm statistics
(PatchGAN) are neither used from the batch nor updated by the extra pass.
"""

from __future__ import annotations

import torch
from torch import nn


def r1_penalty(discriminator: nn.Module, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared L2 norm of the gradient of D's logits w.r.t. each real image."""
    real = real.detach().clone().requires_grad_(True)
    modes = {module: module.training for module in discriminator.modules()}
    discriminator.eval()
    try:
        logits = discriminator(real)
    finally:
        for module, mode in modes.items():
            module.training = mode
    dtype = torch.promote_types(logits.dtype, torch.float32)  # at least fp32 under autocast
    (grad,) = torch.autograd.grad(logits.to(dtype).sum(), real, create_graph=True)
    return grad.to(dtype).pow(2).flatten(1).sum(1).mean()
