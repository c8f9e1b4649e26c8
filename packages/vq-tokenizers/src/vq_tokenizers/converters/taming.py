"""Load taming-transformers VQGAN checkpoints (``VQModel`` with ``VectorQuantizer2``) into :class:`VQGAN`.

Key layout of a taming Lightning checkpoint (``{"state_dict": ...}``), read from the public code:
``encoder.down.<i>.block.<j>.{norm1,conv1,norm2,conv2,nin_shortcut}``, ``encoder.down.<i>.attn.<j>.{norm,q,k,v,
proj_out}``, ``encoder.down.<i>.downsample.conv``, ``encoder.mid.{block_1,attn_1,block_2}``, ``norm_out``,
``conv_out``; the decoder likewise with ``up.<i>`` indexed by *resolution level* (``up.<L-1>`` runs first)
and ``upsample.conv``; ``quant_conv``, ``post_quant_conv``, ``quantize.embedding.weight`` (L2 codebook);
``loss.discriminator.main.*`` (PatchGAN) and ``loss.perceptual_loss.*`` (LPIPS, dropped).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from vq_core import load_foreign_checkpoint
from vq_tokenizers.base import save_tokenizer
from vq_tokenizers.converters.keymap import BLOCK_RULES, level_indices, build_vqgan, fuse_qkv, rename, unwrap_state_dict
from vq_tokenizers.vqgan import VQGAN

CODEBOOK_KEY = "quantize.embedding.weight"
DISCRIMINATOR_PREFIX = "loss.discriminator."


def taming_state_to_vqgan(
    state: dict[str, torch.Tensor], *, image_size: int = 256, source: str = "taming state dict"
) -> tuple[VQGAN, dict[str, torch.Tensor]]:
    """Our VQGAN with the weights of a taming ``VQModel`` state dict, and its discriminator's weights (maybe empty)."""
    if "quantize.embed.weight" in state or "quantize.proj.weight" in state:
        raise ValueError(f"{source}: Gumbel-softmax VQGAN checkpoints are not supported (only VectorQuantizer2)")
    if CODEBOOK_KEY not in state:
        raise ValueError(f"{source}: no {CODEBOOK_KEY}; is this a taming-transformers VQGAN checkpoint?")
    levels = len(level_indices(state, r"decoder\.up\.(\d+)\."))
    rules = [
        (r"^encoder\.down\.(\d+)\.block\.", r"encoder.down.\1.res."),
        (r"^encoder\.down\.(\d+)\.downsample\.", r"encoder.down.\1.resample."),
        # decoder levels: taming indexes by resolution, we store them in execution order
        (r"^decoder\.up\.(\d+)\.", lambda m: f"decoder.up.{levels - 1 - int(m.group(1))}."),
        (r"^decoder\.up\.(\d+)\.block\.", r"decoder.up.\1.res."),
        (r"^decoder\.up\.(\d+)\.upsample\.", r"decoder.up.\1.resample."),
        (r"\.mid\.attn_1\.", ".mid.attn."),
        *BLOCK_RULES,
    ]
    ours = fuse_qkv(rename(state, rules, drop=("loss.", CODEBOOK_KEY)))
    model = build_vqgan(ours, state[CODEBOOK_KEY], distance="l2", image_size=image_size, source=source)
    disc = {k[len(DISCRIMINATOR_PREFIX) :]: v for k, v in state.items() if k.startswith(DISCRIMINATOR_PREFIX)}
    return model, disc


def convert_taming(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, image_size: int = 256, trust_pickle: bool = False
) -> Path:
    """Convert a taming ``.ckpt`` into a vq checkpoint (discriminator kept in its state for fine-tuning).

    The Lightning file is read by :func:`vq_core.load_foreign_checkpoint` (weights-only unpickler; its
    callback keys unpickle as inert stand-ins); ``trust_pickle`` unpickles anything else it needs."""
    payload = load_foreign_checkpoint(checkpoint, trust_pickle=trust_pickle)
    state = unwrap_state_dict(payload, ["state_dict"], path=str(checkpoint))
    model, disc = taming_state_to_vqgan(state, image_size=image_size, source=str(checkpoint))
    extra = {"converted_from": f"taming:{Path(checkpoint).name}"}
    if disc:
        extra["discriminator"] = disc
    return save_tokenizer(model, out, state=extra)

