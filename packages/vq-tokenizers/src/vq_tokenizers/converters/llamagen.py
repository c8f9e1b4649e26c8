"""Load LlamaGen VQ tokenizer checkpoints (VQ-16 / VQ-8, ``tokenizer/tokenizer_image/vq_model.py``) into :class:`VQGAN`.

Key layout, read from the public code: ``encoder.conv_blocks.<i>.res.<j>.{norm1,conv1,norm2,conv2,nin_shortcut}``,
``encoder.conv_blocks.<i>.attn.<j>.{norm,q,k,v,proj_out}`` (attention only at the lowest-resolution level),
``encoder.conv_blocks.<i>.downsample.conv``, ``encoder.mid.{0,1,2}`` (res, attn, res), ``norm_out``,
``conv_out``; the decoder's ``conv_blocks`` are already in execution order with ``upsample.conv``;
``quant_conv`` (z -> 8), ``post_quant_conv``, ``quantize.embedding.weight`` (compared after l2
normalisation, i.e. cosine) and the usage buffer ``quantize.codebook_used`` (dropped).  Training
checkpoints are ``{"model", "ema"?, "discriminator", "optimizer", ...}``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from vq_core import load_foreign_checkpoint
from vq_tokenizers.base import save_tokenizer
from vq_tokenizers.converters.keymap import BLOCK_RULES, build_vqgan, fuse_qkv, rename, unwrap_state_dict
from vq_tokenizers.vqgan import VQGAN

CODEBOOK_KEY = "quantize.embedding.weight"

RULES = [
    (r"^encoder\.conv_blocks\.(\d+)\.downsample\.", r"encoder.down.\1.resample."),
    (r"^encoder\.conv_blocks\.", "encoder.down."),
    (r"^decoder\.conv_blocks\.(\d+)\.upsample\.", r"decoder.up.\1.resample."),
    (r"^decoder\.conv_blocks\.", "decoder.up."),
    (r"\.mid\.0\.", ".mid.block_1."),
    (r"\.mid\.1\.", ".mid.attn."),
    (r"\.mid\.2\.", ".mid.block_2."),
    *BLOCK_RULES,
]


def llamagen_state_to_vqgan(
    state: dict[str, torch.Tensor], *, image_size: int = 256, source: str = "LlamaGen state dict"
) -> VQGAN:
    """Our VQGAN (cosine quantizer) with the weights of a LlamaGen ``VQModel`` state dict."""
    if CODEBOOK_KEY not in state:
        raise ValueError(f"{source}: no {CODEBOOK_KEY}; is this a LlamaGen VQ checkpoint?")
    ours = fuse_qkv(rename(state, RULES, drop=("quantize.",)))
    # LlamaGen compares l2-normalised vectors and decodes normalised codes: store them normalised
    codebook = F.normalize(state[CODEBOOK_KEY].float(), dim=-1)
    return build_vqgan(ours, codebook, distance="cosine", image_size=image_size, source=source)


def convert_llamagen(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    image_size: int = 256,
    weights: str = "ema",
    trust_pickle: bool = False,
) -> Path:
    """Convert a LlamaGen ``.pt`` into a vq checkpoint; ``weights`` picks "ema" (if present) or "model".

    The file is read by :func:`vq_core.load_foreign_checkpoint` (weights-only unpickler; its ``args``
    Namespace is allowlisted); ``trust_pickle`` unpickles anything else it needs."""
    payload = load_foreign_checkpoint(checkpoint, trust_pickle=trust_pickle)
    order = ["ema", "model", "state_dict"] if weights == "ema" else ["model", "state_dict"]
    state = unwrap_state_dict(payload, order, path=str(checkpoint))
    model = llamagen_state_to_vqgan(state, image_size=image_size, source=str(checkpoint))
    extra: dict[str, object] = {"converted_from": f"llamagen:{Path(checkpoint).name}"}
    if isinstance(payload, dict) and isinstance(payload.get("discriminator"), dict):
        extra["discriminator"] = payload["discriminator"]
    return save_tokenizer(model, out, state=extra)
