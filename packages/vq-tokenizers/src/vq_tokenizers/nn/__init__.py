"""Shared conv building blocks of the VQGAN-style tokenizers (also used by pixel decoders)."""

from vq_tokenizers.nn.blocks import AttnBlock, Downsample, Level, MidBlock, ResBlock, Upsample, group_norm
from vq_tokenizers.nn.convnet import Decoder, Encoder, level_resolutions

__all__ = [
    "AttnBlock",
    "Decoder",
    "Downsample",
    "Encoder",
    "Level",
    "MidBlock",
    "ResBlock",
    "Upsample",
    "group_norm",
    "level_resolutions",
]
