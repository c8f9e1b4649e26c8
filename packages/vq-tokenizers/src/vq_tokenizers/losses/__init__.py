"""Training objectives of the VQGAN-style tokenizers: LPIPS, PatchGAN / StyleGAN discriminators, GAN losses, R1, adaptive GAN weight."""

from vq_tokenizers.losses.adaptive import adaptive_generator_weight
from vq_tokenizers.losses.discriminator import (
    NLayerDiscriminator,
    hinge_d_loss,
    hinge_g_loss,
    non_saturating_d_loss,
    non_saturating_g_loss,
)
from vq_tokenizers.losses.lpips import LPIPS, VGG16_FILENAME, default_vgg16_path
from vq_tokenizers.losses.r1_penalty import r1_penalty
from vq_tokenizers.losses.stylegan_discriminators import LlamaGenStyleGANDiscriminator, StyleGAN2Discriminator
from vq_tokenizers.losses.vqgan_loss import LossConfig, VQGANLoss, build_discriminator, frozen

__all__ = [
    "LPIPS",
    "VGG16_FILENAME",
    "LlamaGenStyleGANDiscriminator",
    "LossConfig",
    "NLayerDiscriminator",
    "StyleGAN2Discriminator",
    "VQGANLoss",
    "adaptive_generator_weight",
    "build_discriminator",
    "default_vgg16_path",
    "frozen",
    "hinge_d_loss",
    "hinge_g_loss",
    "non_saturating_d_loss",
    "non_saturating_g_loss",
    "r1_penalty",
]
