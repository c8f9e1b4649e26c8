"""Training objectives of the VQGAN-style tokenizers: LPIPS, PatchGAN discriminator, adaptive GAN weight."""

from vq_tokenizers.losses.adaptive import adaptive_generator_weight
from vq_tokenizers.losses.discriminator import NLayerDiscriminator, hinge_d_loss, hinge_g_loss
from vq_tokenizers.losses.lpips import LPIPS, VGG16_FILENAME, default_vgg16_path
from vq_tokenizers.losses.vqgan_loss import LossConfig, VQGANLoss, frozen

__all__ = [
    "LPIPS",
    "VGG16_FILENAME",
    "LossConfig",
    "NLayerDiscriminator",
    "VQGANLoss",
    "adaptive_generator_weight",
    "default_vgg16_path",
    "frozen",
    "hinge_d_loss",
    "hinge_g_loss",
]
