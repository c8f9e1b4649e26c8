"""The VQGAN objective: pixel (L1 and/or MSE) + LPIPS + codebook loss + adaptively weighted GAN term.

Generator: ``rec = l1_w*L1 + l2_w*MSE + perceptual_w*LPIPS``;
``loss = rec + codebook_w*q_loss + gan_w * lambda * g`` where ``g`` is ``-E[D(x_hat)]`` (hinge) or
``E[softplus(-D(x_hat))]`` (non-saturating) and ``lambda`` is the adaptive weight
(``adaptive_gain * ||grad rec|| / ||grad g||`` at the decoder's last layer), or 1 when
``adaptive_gain`` is None (LlamaGen).  Discriminator: ``gan_w * d(D(x), D(x_hat)) + r1_w * R1(x)``
with ``d`` hinge or non-saturating.  The discriminator (PatchGAN, the seed's StyleGAN2 or LlamaGen's
StyleGAN) lives here, not in the tokenizer, so tokenizer checkpoints stay free of it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vq_core import StrictConfig
from vq_tokenizers.losses.adaptive import adaptive_generator_weight
from vq_tokenizers.losses.discriminator import (
    NLayerDiscriminator,
    hinge_d_loss,
    hinge_g_loss,
    non_saturating_d_loss,
    non_saturating_g_loss,
)
from vq_tokenizers.losses.lpips import LPIPS
from vq_tokenizers.losses.r1_penalty import r1_penalty
from vq_tokenizers.losses.stylegan_discriminators import LlamaGenStyleGANDiscriminator, StyleGAN2Discriminator


class LossConfig(StrictConfig):
    """Weights of the VQGAN objective and the discriminator's shape."""

    l1_weight: float = Field(default=1.0, ge=0)
    l2_weight: float = Field(default=0.0, ge=0)
    perceptual_weight: float = Field(default=1.0, ge=0, description="0 disables LPIPS (no VGG weights needed)")
    lpips_vgg_weights: str | None = Field(default=None, description="torchvision vgg16 state dict; default: torch hub cache")
    codebook_weight: float = Field(default=1.0, ge=0)
    gan_weight: float = Field(default=1.0, ge=0, description="scales both the generator and discriminator GAN terms")
    adaptive_gain: float | None = Field(default=0.8, ge=0, description="None: no adaptive weight (weight 1)")
    disc_layers: int = Field(default=3, ge=1, description="PatchGAN depth (published: 3, or 2 in 'dd2' setups)")
    disc_channels: int = Field(default=64, gt=0)
    discriminator: Literal["patchgan", "stylegan2", "stylegan_llamagen"] = Field(
        default="patchgan",
        description="patchgan (taming/LlamaGen NLayerDiscriminator); stylegan2 (the seed's StyleGAN2Discriminator, "
        "vqgan/8192_stylegan2); stylegan_llamagen (LlamaGen --disc-type stylegan, its parameter names)",
    )
    disc_image_size: int = Field(
        default=256, gt=0, description="StyleGAN discriminators only: the (square) training image size they are built for"
    )
    disc_max_channels: int = Field(
        default=512, gt=0, description="StyleGAN discriminators only: widest layer (published 512; smaller scales all widths)"
    )
    generator_loss: Literal["hinge", "non_saturating"] = Field(
        default="hinge",
        description="hinge: -E[D(G(z))] (taming, seed, LlamaGen default); non_saturating: E[softplus(-D(G(z)))] "
        "(the seed's NonSaturatingLoss; LlamaGen's --gen-loss non-saturating is hinge + a constant, see losses docs)",
    )
    disc_loss: Literal["hinge", "non_saturating"] = Field(
        default="hinge", description="hinge, or non_saturating: the original GAN cross-entropy (LlamaGen --disc-loss vanilla)"
    )
    r1_weight: float = Field(
        default=0.0, ge=0, description="R1 gradient penalty weight on real images (seed R1GradientPenalty; 0: off)"
    )


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Let gradients flow *through* ``module`` without accumulating into its parameters."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class VQGANLoss(nn.Module):
    def __init__(self, config: LossConfig) -> None:
        super().__init__()
        self.config = config
        self.discriminator = build_discriminator(config)
        self._g_loss = non_saturating_g_loss if config.generator_loss == "non_saturating" else hinge_g_loss
        self._d_loss = non_saturating_d_loss if config.disc_loss == "non_saturating" else hinge_d_loss
        self.lpips = LPIPS(config.lpips_vgg_weights) if config.perceptual_weight > 0 else None

    def reconstruction(self, images: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted pixel + perceptual loss (the 'nll' the adaptive weight balances against)."""
        c = self.config
        recon = recon.float()
        images = images.float()
        logs: dict[str, torch.Tensor] = {}
        total = recon.new_zeros(())
        if c.l1_weight > 0:
            logs["l1"] = F.l1_loss(recon, images)
            total = total + c.l1_weight * logs["l1"]
        if c.l2_weight > 0:
            logs["mse"] = F.mse_loss(recon, images)
            total = total + c.l2_weight * logs["mse"]
        if self.lpips is not None:
            logs["lpips"] = self.lpips(images, recon).float().mean()
            total = total + c.perceptual_weight * logs["lpips"]
        logs["rec"] = total
        return total, logs

    def generator(
        self,
        images: torch.Tensor,
        recon: torch.Tensor,
        quant_loss: torch.Tensor,
        last_layer: torch.Tensor,
        *,
        with_gan: bool,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total generator loss and its components (detached copies for logging are the caller's job)."""
        c = self.config
        rec, logs = self.reconstruction(images, recon)
        loss = rec + c.codebook_weight * quant_loss
        logs["quant"] = quant_loss
        if with_gan and c.gan_weight > 0:
            with frozen(self.discriminator):
                g_loss = self._g_loss(self.discriminator(recon).float())
            if c.adaptive_gain is None:
                weight = g_loss.new_ones(())
            elif torch.is_grad_enabled():
                weight = adaptive_generator_weight(rec, g_loss, last_layer, c.adaptive_gain)
            else:  # evaluation: no graph to differentiate
                weight = g_loss.new_zeros(())
            loss = loss + c.gan_weight * weight * g_loss
            logs["g"] = g_loss
            logs["adaptive_weight"] = weight
        logs["loss"] = loss
        return loss, logs

    def discriminator_loss(self, images: torch.Tensor, recon: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """GAN loss on real images and (detached) reconstructions, each batch through D on its own, + R1 on the reals."""
        logits_real = self.discriminator(images.detach()).float()
        logits_fake = self.discriminator(recon.detach()).float()
        d_loss = self.config.gan_weight * self._d_loss(logits_real, logits_fake)
        logs = {"logits_real": logits_real.mean(), "logits_fake": logits_fake.mean()}
        if self.config.r1_weight > 0:
            logs["r1"] = r1_penalty(self.discriminator, images)
            d_loss = d_loss + self.config.r1_weight * logs["r1"]
        logs["d"] = d_loss
        return d_loss, logs


def build_discriminator(config: LossConfig) -> nn.Module:
    """The discriminator ``config.discriminator`` names, at its configured size."""
    if config.discriminator == "stylegan2":
        return StyleGAN2Discriminator(config.disc_image_size, config.disc_max_channels)
    if config.discriminator == "stylegan_llamagen":
        return LlamaGenStyleGANDiscriminator(config.disc_image_size, config.disc_max_channels)
    return NLayerDiscriminator(3, config.disc_channels, config.disc_layers)
