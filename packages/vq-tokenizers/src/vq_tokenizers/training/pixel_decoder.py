"""Training a pixel decoder on a frozen tokenizer with the VQGAN trainer and objective.

Presets name a decoder shape, a loss and a schedule, each the seed's ``configs/decoder/<name>.py``:
``vqgan`` (VQGAN conv decoder with the loss of ``vqgan/8192_dd2_aglwg075``: L1 + LPIPS + PatchGAN depth
2, adaptive gain 0.75), ``llamagen`` (the same conv decoder with LlamaGen's MSE + LPIPS + GAN 0.5 from
step 20k, the seed's documented decoder), ``vqkd`` / ``vqkd_large`` (ViT decoders 768 x 12 / 1280 x 32
predicting 16x16 pixel patches per token), all at 256 px (a 224-px VQ-KD gives 16x16 tokens there),
and ``tiny`` (CPU, at the source's size).  The number of decoder levels follows from the source: a
14x14 grid at 224 px needs x16 = 5 levels, a 4x4 grid at 32 px x8 = 4; a preset's ``ch_mult`` keeps its
last (lowest-resolution, widest) entries when fewer levels are needed and repeats its first when more
are.  Attention defaults to the token-grid resolution, as taming's f16 decoder attends at 16x16.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from vq_core import CheckpointError
from vq_tokenizers.base import Tokenizer, load_tokenizer
from vq_tokenizers.losses import LossConfig
from vq_tokenizers.pixel_decoder import PixelDecoderTokenizer
from vq_tokenizers.presets import DD2_AGLWG075, LLAMAGEN_LOSS, LLAMAGEN_TRAIN, PAPER_TRAIN, TINY_LOSS, TINY_TRAIN, Preset
from vq_tokenizers.training.job import ImageTrainJob, deep_merge, image_trainer, session_rank_world
from vq_tokenizers.training import TrainConfig

DECODER_F16 = {"ch": 128, "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2, "z_channels": 256}
SEED_DECODER_SIZE = 256  # the seed trains every pixel decoder on 256 px images (its VQGAN / LlamaGen data configs)
VIT_DECODER = {"decoder": "vit", "z_channels": 32, "image_size": SEED_DECODER_SIZE}  # VQKDDecoder: in_chans 32, out_patch_size 16
PIXEL_DECODER_PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            name="vqgan", family="pixel", model={**DECODER_F16, "image_size": SEED_DECODER_SIZE}, loss=DD2_AGLWG075,
            train=PAPER_TRAIN,
            description="seed configs/decoder/vqgan.py (ir_config vqgan/8192_dd2_aglwg075_imagenet_ddp.py): VQGAN conv decoder, "
            "256 px, L1 + LPIPS + PatchGAN depth 2 with adaptive gain 0.75, Adam (0.5, 0.9), 260k x 96",
        ),
        Preset(
            name="llamagen", family="pixel", model={**DECODER_F16, "image_size": SEED_DECODER_SIZE}, loss=LLAMAGEN_LOSS,
            train=LLAMAGEN_TRAIN,
            description="seed configs/decoder/llamagen.py (ir_config llamagen/vqgan_imagenet_ddp.py): conv decoder, 256 px, "
            "MSE + LPIPS + GAN 0.5 (no adaptive weight) from step 20k, lr 1e-4, Adam (0.9, 0.95), 400k x 128",
        ),
        Preset(
            name="vqkd", family="pixel", model={**VIT_DECODER, "vit_dim": 768, "vit_depth": 12, "vit_heads": 12},
            loss=DD2_AGLWG075, train=PAPER_TRAIN,
            description="seed configs/decoder/vqkd.py (with decoder/vqgan.py): ViT decoder 768 x 12, 12 heads, 16x16 "
            "pixel patches per token, 256 px; loss and schedule of decoder/vqgan.py",
        ),
        Preset(
            name="vqkd_large", family="pixel", model={**VIT_DECODER, "vit_dim": 1280, "vit_depth": 32, "vit_heads": 16},
            loss=DD2_AGLWG075, train=PAPER_TRAIN,
            description="seed configs/decoder/vqkd_large.py (with decoder/vqgan.py): ViT decoder 1280 x 32, 16 heads, 256 px",
        ),
        Preset(
            name="tiny", family="pixel", model={"ch": 32, "ch_mult": (1, 1, 2, 2), "num_res_blocks": 1, "z_channels": 32},
            loss=TINY_LOSS, train=TINY_TRAIN, description="CPU-sized decoder (ch 32) at the source's size, L1 + PatchGAN, no LPIPS",
        ),
    )
}


def fit_ch_mult(ch_mult: tuple[int, ...], levels: int) -> tuple[int, ...]:
    """``ch_mult`` with exactly ``levels`` entries: keep the last ones, or repeat the first."""
    if len(ch_mult) >= levels:
        return tuple(ch_mult[len(ch_mult) - levels :])
    return (ch_mult[0],) * (levels - len(ch_mult)) + tuple(ch_mult)


def pixel_decoder_shape(preset: str, source: Tokenizer, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Decoder fields of a preset fitted to ``source``'s grid at the preset's image size, ``overrides`` last.

    The image size is the override's, else the preset's (256 for the seed's presets: a 224-px VQ-KD then
    gives 16x16 tokens), else the source's own."""
    if preset not in PIXEL_DECODER_PRESETS:
        raise KeyError(f"no pixel-decoder preset {preset!r}; known: {sorted(PIXEL_DECODER_PRESETS)}")
    shape = dict(PIXEL_DECODER_PRESETS[preset].model)
    size = (overrides or {}).get("image_size") or shape.get("image_size") or source.image_size
    grid = source.grid_for(size)
    shape["image_size"] = size
    if (overrides or {}).get("decoder", shape.get("decoder", "conv")) == "vit":
        return deep_merge(shape, overrides or {})
    ratio = size // grid[0]
    if ratio * grid[0] != size or ratio & (ratio - 1):
        raise ValueError(
            f"the {source.family} tokenizer maps {size} px images to a {grid[0]}-wide grid; a conv "
            f"decoder needs image_size / grid to be a power of two (choose the decoder's image_size accordingly)"
        )
    shape["ch_mult"] = fit_ch_mult(tuple(shape["ch_mult"]), ratio.bit_length())
    shape["attn_resolutions"] = (grid[0],)
    return deep_merge(shape, overrides or {})


class PixelDecoderJob(ImageTrainJob):
    """What ``vq-tok train-pixel-decoder`` runs (and what ``vq_core.launch`` passes to :func:`train_pixel_decoder`);
    ``out/tokenizer.safetensors`` is the pixel tokenizer."""

    tokenizer: str = Field(description="checkpoint of the frozen VQ-KD / Cluster (any family with encode) tokenizer")
    decoder: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's decoder fields")


def train_pixel_decoder(config: dict[str, Any] | PixelDecoderJob, session: Any = None) -> dict[str, float]:
    """Fit a pixel decoder to a frozen tokenizer; the ``fn(config, session)`` loop of ``vq_core.launch``.

    Runs the VQGAN :class:`Trainer` (DDP under torchrun or several Ray workers, resume, EMA, NaN stop)
    on a :class:`PixelDecoderTokenizer`; ``out/tokenizer.safetensors`` encodes like the source and decodes its
    tokens.  With a session: its rank/device, Ray's restore directory, reports through ``session.report``.
    Returns the last logged metrics.
    """
    job = config if isinstance(config, PixelDecoderJob) else PixelDecoderJob.from_dict(config, source="pixel decoder job")
    rank, world = session_rank_world(session)
    if job.preset not in PIXEL_DECODER_PRESETS:
        raise KeyError(f"no pixel-decoder preset {job.preset!r}; known: {sorted(PIXEL_DECODER_PRESETS)}")
    spec = PIXEL_DECODER_PRESETS[job.preset]
    loss = LossConfig.from_dict(deep_merge(spec.loss.model_dump(), job.loss), source=f"pixel preset {job.preset} loss")
    train = TrainConfig.from_dict(deep_merge(spec.train.model_dump(), job.train), source=f"pixel preset {job.preset} train")
    source = load_tokenizer(job.tokenizer)
    torch.manual_seed(train.seed)  # the decoder's initial weights are part of the run's seeded state
    model = PixelDecoderTokenizer.from_source(source, **pixel_decoder_shape(job.preset, source, job.decoder))
    trainer, restored = image_trainer(model, job, train, loss, session, rank, world)
    if (job.resume or restored) and trainer.resume() and model.token_space_hash() != source.token_space_hash():
        raise CheckpointError(
            f"pixel decoder checkpoints in {job.out} decode token space {model.token_space_hash()} but --tokenizer "
            f"{job.tokenizer} has token space {source.token_space_hash()}; resume with the tokenizer they were trained on or use a new --out"
        )
    return trainer.train()
