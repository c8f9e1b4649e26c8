"""Training a pixel decoder on a frozen tokenizer with the VQGAN trainer and objective.

Presets name a decoder shape, a loss and a schedule: ``vqgan`` (taming decoder, L1 + LPIPS +
adaptively weighted PatchGAN), ``llamagen`` (the same conv decoder with LlamaGen's MSE + LPIPS + GAN
0.5 from step 20k) and ``tiny`` (CPU).  The number of decoder levels follows from the source: a
14x14 grid at 224 px needs x16 = 5 levels, a 4x4 grid at 32 px x8 = 4; a preset's ``ch_mult`` keeps its
last (lowest-resolution, widest) entries when fewer levels are needed and repeats its first when more
are.  Attention defaults to the token-grid resolution, as taming's f16 decoder attends at 16x16.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vq_tokenizers.base import Tokenizer, load_tokenizer
from vq_tokenizers.losses import LossConfig
from vq_tokenizers.pixel_decoder import PixelDecoderTokenizer
from vq_tokenizers.presets import LLAMAGEN_LOSS, LLAMAGEN_TRAIN, PAPER_TRAIN, TAMING_LOSS, TINY_LOSS, TINY_TRAIN, Preset
from vq_tokenizers.training import ImageBatches, TrainConfig, Trainer
from vq_tokenizers.train_job import deep_merge

DECODER_F16 = {"ch": 128, "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2, "z_channels": 256}
PIXEL_DECODER_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="vqgan", family="pixel", model=DECODER_F16, loss=TAMING_LOSS, train=PAPER_TRAIN,
            description="taming VQGAN decoder (ch 128, mult 1-1-2-2-4), L1 + LPIPS + PatchGAN with adaptive weight",
        ),
        Preset(
            name="llamagen", family="pixel", model=DECODER_F16, loss=LLAMAGEN_LOSS, train=LLAMAGEN_TRAIN,
            description="LlamaGen-style: same conv decoder, MSE + LPIPS + GAN 0.5 (no adaptive weight) from step 20k",
        ),
        Preset(
            name="tiny", family="pixel", model={"ch": 32, "ch_mult": (1, 1, 2, 2), "num_res_blocks": 1, "z_channels": 32},
            loss=TINY_LOSS, train=TINY_TRAIN, description="CPU-sized decoder (ch 32), L1 + PatchGAN, no LPIPS",
        ),
    )
}


def fit_ch_mult(ch_mult: tuple[int, ...], levels: int) -> tuple[int, ...]:
    """``ch_mult`` with exactly ``levels`` entries: keep the last ones, or repeat the first."""
    if len(ch_mult) >= levels:
        return tuple(ch_mult[len(ch_mult) - levels :])
    return (ch_mult[0],) * (levels - len(ch_mult)) + tuple(ch_mult)


def pixel_decoder_shape(preset: str, source: Tokenizer, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decoder fields of a preset fitted to ``source``'s grid, with ``overrides`` applied last."""
    if preset not in PIXEL_DECODER_PRESETS:
        raise KeyError(f"no pixel-decoder preset {preset!r}; known: {sorted(PIXEL_DECODER_PRESETS)}")
    ratio = source.image_size // source.grid[0]
    if ratio * source.grid[0] != source.image_size or ratio & (ratio - 1):
        raise ValueError(
            f"the {source.family} tokenizer maps {source.image_size} px images to a {source.grid[0]}-wide grid; a conv "
            f"decoder needs image_size / grid to be a power of two (choose the tokenizer's image_size accordingly)"
        )
    shape = dict(PIXEL_DECODER_PRESETS[preset].model)
    shape["ch_mult"] = fit_ch_mult(tuple(shape["ch_mult"]), ratio.bit_length())
    shape["attn_resolutions"] = (source.grid[0],)
    return deep_merge(shape, overrides or {})


def train_pixel_decoder(
    tokenizer: str | os.PathLike[str],
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    preset: str = "tiny",
    decoder: dict[str, Any] | None = None,
    loss: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    resume: bool = False,
) -> dict[str, float]:
    """Fit a pixel decoder to the frozen tokenizer checkpoint ``tokenizer`` on the images in ``data``.

    Writes the VQGAN trainer's files into ``out``; ``out/tokenizer.pt`` is a ``pixel`` tokenizer that
    encodes like the source and decodes its tokens.  Returns the last logged metrics.
    """
    source = load_tokenizer(tokenizer)
    model = PixelDecoderTokenizer.from_source(source, **pixel_decoder_shape(preset, source, decoder))
    spec = PIXEL_DECODER_PRESETS[preset]
    loss_config = LossConfig.from_dict(deep_merge(spec.loss.model_dump(), loss or {}), source=f"pixel preset {preset} loss")
    train_config = TrainConfig.from_dict(deep_merge(spec.train.model_dump(), train or {}), source=f"pixel preset {preset} train")
    batches = ImageBatches(data, image_size=model.image_size, batch_size=train_config.micro_batch_size(1), seed=train_config.seed)
    trainer = Trainer(model, batches, train_config, Path(out), loss=loss_config)
    if resume:
        trainer.resume()
    return trainer.train()
