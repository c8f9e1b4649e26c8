"""Named setups: model shape + loss + optimisation, matching the published configurations.

Sources: taming-transformers ImageNet VQGAN (f16, 1024/16384 codes; f8 OpenImages 16384), the
"Image Understanding Makes for A Good Tokenizer" code base (magic-research/vector_quantization:
VQGAN 1024/8192/16384, ``dd2_aglwg075`` = discriminator depth 2 + adaptive gain 0.75, CVQ-VAE, FSQ
8000/64000, lr 5.4e-5 / discriminator 4.32e-4, Adam betas (0.5, 0.9), 260k steps, batch 96) and
LlamaGen VQ-16 (16384 codes of dim 8, l2-normalised; MSE + LPIPS, GAN weight 0.5 without adaptive
weight from step 20k, lr 1e-4, betas (0.9, 0.95), grad-norm clip 1, batch 128).
``tiny`` presets are CPU-sized (32 px, ch 32) for tests and the demo.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from vq_tokenizers.losses import LossConfig
from vq_tokenizers.training.config import TrainConfig


class Preset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str
    family: str
    model: dict[str, Any]
    loss: LossConfig
    train: TrainConfig
    description: str


# --- building blocks ------------------------------------------------------------------------------
F16 = {"image_size": 256, "ch": 128, "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 2, "attn_resolutions": (16,), "z_channels": 256}
F8_OPENIMAGES = {**F16, "ch_mult": (1, 2, 2, 4), "attn_resolutions": (32,), "z_channels": 4}
F8 = {**F16, "ch_mult": (1, 1, 2, 4), "attn_resolutions": (32,)}  # seed vqgan/f8.py: width_mults (1, 1, 2, 4)
LLAMAGEN_F8 = {**F16, "ch_mult": (1, 2, 2, 4), "attn_resolutions": (32,)}  # LlamaGen VQ-8: [1, 2, 2, 4], attention at the last level
TINY = {"image_size": 32, "ch": 32, "ch_mult": (1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (8,), "z_channels": 32}

TAMING_LOSS = LossConfig()  # L1 + LPIPS, PatchGAN depth 3, adaptive gain 0.8
DD2_AGLWG075 = LossConfig(disc_layers=2, adaptive_gain=0.75)
STYLEGAN2_LOSS = LossConfig(discriminator="stylegan2", disc_image_size=256)  # seed vqgan/8192_stylegan2: StyleGAN2Discriminator(image_size=256), hinge losses, no R1
LLAMAGEN_LOSS = LossConfig(l1_weight=0.0, l2_weight=1.0, gan_weight=0.5, adaptive_gain=None)
TINY_LOSS = LossConfig(perceptual_weight=0.0, disc_layers=2, disc_channels=32, adaptive_gain=0.75)

PAPER_TRAIN = TrainConfig(steps=260_000, batch_size=96, lr=5.4e-5, disc_lr=4.32e-4, betas=(0.5, 0.9), ckpt_every=10_000, sample_every=500)
LLAMAGEN_TRAIN = TrainConfig(
    steps=400_000, batch_size=128, lr=1e-4, disc_lr=1e-4, betas=(0.9, 0.95), grad_clip=1.0, disc_start=20_000, ckpt_every=5_000
)
TINY_TRAIN = TrainConfig(steps=300, batch_size=16, lr=4e-4, betas=(0.5, 0.9), disc_start=200, log_every=25, ckpt_every=100, sample_every=100)


def _vq(codebook_size: int, dim: int, **extra: Any) -> dict[str, Any]:
    return {"codebook_size": codebook_size, "dim": dim, **extra}


COSINE_ANCHORS = {"distance": "cosine", "anchor_reinit": True}


SEED = "magic-research/vector_quantization configs"


def _presets() -> list[Preset]:
    out = []
    for k in (1024, 8192, 16384):
        out.append(Preset(
            name=f"vqgan_f16_{k}", family="vqgan", model={**F16, "quantizer": _vq(k, 256)}, loss=TAMING_LOSS,
            train=PAPER_TRAIN,
            description=f"{SEED}/vqgan/{k}_imagenet_ddp.py: VQGAN f16, {k} x 256 L2 codes, L1 + LPIPS, PatchGAN depth 3, "
            f"adaptive gain 0.8, 256 px",
        ))
    for k in (8192, 16384):
        out.append(Preset(
            name=f"vqgan_f16_{k}_dd2_aglwg075", family="vqgan", model={**F16, "quantizer": _vq(k, 256)},
            loss=DD2_AGLWG075, train=PAPER_TRAIN,
            description=f"{SEED}/vqgan/{k}_dd2_aglwg075_imagenet_ddp.py: VQGAN f16 {k}, discriminator depth 2, adaptive gain 0.75",
        ))
    out += [
        Preset(
            name="vqgan_f8_8192", family="vqgan", model={**F8, "quantizer": _vq(8192, 256)}, loss=TAMING_LOSS, train=PAPER_TRAIN,
            description=f"{SEED}/vqgan/f8.py on vqgan/8192_imagenet_ddp.py: width mults (1, 1, 2, 4) = f8 (32x32 tokens), "
            f"attention at 32x32, 8192 x 256 codes",
        ),
        Preset(
            name="vqgan_f16_8192_stylegan2", family="vqgan", model={**F16, "quantizer": _vq(8192, 256)}, loss=STYLEGAN2_LOSS,
            train=PAPER_TRAIN,
            description=f"{SEED}/vqgan/8192_stylegan2_imagenet_ddp.py: VQGAN f16 8192 with the seed's StyleGAN2 "
            f"discriminator at 256 px (hinge losses, adaptive gain 0.8, no R1, as the config)",
        ),
        Preset(
            name="vqgan_f8_16384", family="vqgan", model={**F8_OPENIMAGES, "quantizer": _vq(16384, 4)}, loss=TAMING_LOSS,
            train=PAPER_TRAIN, description="taming-transformers configs/vqgan_openimages_f8_16384: VQGAN f8, 16384 x 4 codes",
        ),
        Preset(
            name="llamagen_vq16", family="vqgan", model={**F16, "quantizer": _vq(16384, 8, distance="cosine")},
            loss=LLAMAGEN_LOSS, train=LLAMAGEN_TRAIN,
            description="LlamaGen tokenizer/tokenizer_image/vq_model.py VQ_16 (= seed llamagen/vqgan_imagenet_ddp.py): 16384 "
            "l2-normalised codes of dim 8, MSE + LPIPS, GAN 0.5 from 20k, Adam (0.9, 0.95) lr 1e-4, 400k x 128",
        ),
        Preset(
            name="llamagen_vq8", family="vqgan", model={**LLAMAGEN_F8, "quantizer": _vq(16384, 8, distance="cosine")},
            loss=LLAMAGEN_LOSS, train=LLAMAGEN_TRAIN,
            description="LlamaGen tokenizer/tokenizer_image/vq_model.py VQ_8: ch_mult [1, 2, 2, 4] (f8, 32x32 tokens), "
            "16384 l2-normalised codes of dim 8, LlamaGen's loss and schedule",
        ),
        Preset(
            name="cvq_f16_8192_dd2_aglwg075", family="cvq", model={**F16, "quantizer": _vq(8192, 256, **COSINE_ANCHORS)},
            loss=DD2_AGLWG075, train=PAPER_TRAIN,
            description=f"{SEED}/cvqvae/8192_dd2_aglwg075_imagenet_ddp.py: CVQ-VAE f16 8192 (cosine, anchor re-init), dd2, gain 0.75",
        ),
        Preset(
            name="fsq_f16_8000", family="fsq", model={**F16, "quantizer": {"levels": (8, 8, 5, 5, 5)}}, loss=TAMING_LOSS,
            train=PAPER_TRAIN, description=f"{SEED}/fsq/8000_imagenet_ddp.py: FSQ f16, levels (8, 8, 5, 5, 5) = 8000 codes",
        ),
        Preset(
            name="fsq_f16_64000", family="fsq", model={**F16, "quantizer": {"levels": (8, 8, 8, 5, 5, 5)}}, loss=TAMING_LOSS,
            train=PAPER_TRAIN, description=f"{SEED}/fsq/64000_imagenet_ddp.py: FSQ f16, levels (8, 8, 8, 5, 5, 5) = 64000 codes",
        ),
        Preset(
            name="tiny", family="vqgan", model={**TINY, "quantizer": _vq(256, 16)}, loss=TINY_LOSS, train=TINY_TRAIN,
            description="CPU-sized VQGAN: 32 px, ch 32, f4 (8x8 tokens), 256 codes of dim 16",
        ),
        Preset(
            name="tiny", family="cvq", model={**TINY, "quantizer": _vq(256, 16, **COSINE_ANCHORS)}, loss=TINY_LOSS,
            train=TINY_TRAIN, description="CPU-sized CVQ-VAE: 32 px, f4, 256 cosine codes of dim 16 with anchors",
        ),
        Preset(
            name="tiny", family="fsq", model={**TINY, "quantizer": {"levels": (4, 4, 4, 4)}, "proj_channels": 32},
            loss=TINY_LOSS, train=TINY_TRAIN, description="CPU-sized FSQ: 32 px, f4, levels (4, 4, 4, 4) = 256 codes",
        ),
    ]
    return out


PRESETS: dict[tuple[str, str], Preset] = {(p.family, p.name): p for p in _presets()}


def get_preset(name: str, family: str | None = None) -> Preset:
    """Look a preset up by name (and family, needed where a name such as ``tiny`` exists per family)."""
    matches = [p for (fam, n), p in PRESETS.items() if n == name and (family is None or fam == family)]
    if len(matches) == 1:
        return matches[0]
    known = sorted(f"{fam}/{n}" for fam, n in PRESETS)
    families = sorted({fam for fam, _ in PRESETS})
    if family is not None and family not in families:
        raise KeyError(f"unknown tokenizer family {family!r} (--family); use one of {families}")
    if not matches:
        raise KeyError(f"no preset {name!r}{f' for family {family!r}' if family else ''} (--preset); use one of {known}")
    raise KeyError(f"preset {name!r} exists for several families {[p.family for p in matches]}; pass --family")
