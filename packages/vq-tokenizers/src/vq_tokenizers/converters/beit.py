"""Load BEiT v2 VQ-KD checkpoints (microsoft/unilm ``beit2``, e.g. ``vqkd_encoder_base_decoder_1x768x12_clip``)
into :class:`~vq_tokenizers.vqkd.VQKD`.

Key layout, read from the public code (``beit2/modeling_vqkd.py``, ``modeling_finetune.py``,
``norm_ema_quantizer.py``); weights sit under ``model`` (or ``state_dict``):

* ``encoder.`` / ``decoder.``: ``cls_token``, ``pos_embed`` (1, 1 + N, C), ``patch_embed.proj`` (conv;
  the decoder's is 1x1 over the 32-d code map), ``blocks.<i>.{norm1, attn.qkv (weight only), attn.q_bias,
  attn.v_bias, attn.proj, norm2, mlp.fc1, mlp.fc2, gamma_1, gamma_2}`` and ``fc_norm`` (mean-pooling
  models apply it to the patch tokens; ``norm`` otherwise).  LayerNorm eps 1e-6, exact GELU.
* ``encode_task_layer.{0,2}`` / ``decode_task_layer.{0,2}``: linear-tanh-linear heads.
* ``quantize.embedding.weight`` (K, D): l2-normalised codes; the quantizer l2-normalises the encoder
  output and takes the code of least euclidean distance, i.e. the largest cosine.
  ``quantize.embedding.{cluster_size, embed_avg, initted}``, ``quantize.cluster_size``, the teacher
  (``teacher_model.``), ``scaling_layer.`` and ``loss.`` are training-only and dropped; the converted
  quantizer is BEiT's (cosine, EMA, marked initialised), so training can continue from it.

Attention has BEiT's layout (``qkv`` without bias, ``q_bias``, ``v_bias``, no key bias), so those keys
load by name.  The number of heads is not stored in the weights: BEiT uses 64-d heads, the default
here; pass ``heads`` for anything else.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import torch

from vq_core import VectorQuantizerConfig
from vq_core import load_foreign_checkpoint
from vq_tokenizers.base import save_tokenizer
from vq_tokenizers.converters.keymap import rename, unwrap_state_dict
from vq_tokenizers.vit import ViTConfig
from vq_tokenizers.vqkd import VQKD, VQKDConfig, beit_quantizer

log = logging.getLogger(__name__)

CODEBOOK_KEY = "quantize.embedding.weight"
DROP_PREFIXES = ("teacher_model.", "scaling_layer.", "loss.", "quantize.", "encoder.head.", "decoder.head.")
HEAD_DIM = 64
RULES = [
    (r"^(encoder|decoder)\.patch_embed\.proj\.", r"\1.patch_embed."),
    (r"\.gamma_(\d)$", r".gamma\1"),
    (r"^(encoder|decoder)\.fc_norm\.", r"\1.norm."),
    (r"^encode_task_layer\.", "encode_head."),
    (r"^decode_task_layer\.", "decode_head."),
]


def _stack_config(state: dict[str, torch.Tensor], prefix: str, heads: int | None, source: str) -> ViTConfig:
    """A ViT stack's shape, read off its weights."""
    if any(k.startswith(f"{prefix}.") and "relative_position" in k for k in state):
        raise ValueError(f"{source}: {prefix} uses relative position bias, which this VQ-KD does not implement")
    if f"{prefix}.pos_embed" not in state:
        raise ValueError(f"{source}: no {prefix}.pos_embed; only absolute position embeddings are supported")
    dim, in_channels, patch, _ = state[f"{prefix}.patch_embed.proj.weight"].shape
    has_cls = f"{prefix}.cls_token" in state
    patches = state[f"{prefix}.pos_embed"].shape[1] - int(has_cls)
    side = math.isqrt(patches)
    if side * side != patches:
        raise ValueError(f"{source}: {prefix}.pos_embed holds {patches} patch positions, not a square grid")
    depth = len({int(m.group(1)) for k in state if (m := re.match(rf"^{prefix}\.blocks\.(\d+)\.", k))})
    hidden = state[f"{prefix}.blocks.0.mlp.fc1.weight"].shape[0] if depth else 4 * dim
    return ViTConfig(
        image_size=side * patch,
        patch_size=patch,
        in_channels=in_channels,
        dim=dim,
        depth=depth,
        heads=heads or max(dim // HEAD_DIM, 1),
        mlp_ratio=hidden / dim,
        layer_scale=1.0 if f"{prefix}.blocks.0.gamma_1" in state else 0.0,
        cls_token=has_cls,
    )


def _qkv_biases(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """BEiT's ``attn.q_bias`` / ``attn.v_bias`` load by name; a model built with ``qkv_bias=False`` gets zeros."""
    out = dict(state)
    for key in [k for k in state if k.endswith(".attn.qkv.weight")]:
        stem = key[: -len(".qkv.weight")]
        for name in ("q_bias", "v_bias"):
            out.setdefault(f"{stem}.{name}", state[key].new_zeros(state[key].shape[0] // 3))
    return out


def beit_state_to_vqkd(
    state: dict[str, torch.Tensor],
    *,
    heads: int | None = None,
    decoder_heads: int | None = None,
    quantizer: dict[str, Any] | None = None,
    source: str = "BEiT v2 state dict",
) -> VQKD:
    """Our VQ-KD with the weights of a BEiT v2 VQ-KD state dict (encoder, codebook, decoder, heads)."""
    if CODEBOOK_KEY not in state:
        raise ValueError(f"{source}: no {CODEBOOK_KEY}; is this a BEiT v2 VQ-KD checkpoint?")
    for needed in ("encoder.patch_embed.proj.weight", "decoder.patch_embed.proj.weight", "decode_task_layer.2.weight"):
        if needed not in state:
            raise ValueError(f"{source}: no {needed}; is this a BEiT v2 VQ-KD checkpoint?")
    codebook = state[CODEBOOK_KEY].float()
    norms = codebook.norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        log.warning("%s: codebook rows are not unit length (norms %.4g..%.4g); normalising", source, norms.min(), norms.max())
    config = VQKDConfig(
        encoder=_stack_config(state, "encoder", heads, source),
        decoder=_stack_config(state, "decoder", decoder_heads or heads, source),
        quantizer=VectorQuantizerConfig(**{**beit_quantizer(codebook.shape[0], codebook.shape[1]), **(quantizer or {})}),
        target_dim=state["decode_task_layer.2.weight"].shape[0],
    )
    ours = _qkv_biases(rename(state, RULES, drop=DROP_PREFIXES))
    model = VQKD(config)
    missing, unexpected = model.load_state_dict(ours, strict=False)
    missing = [k for k in missing if not k.startswith("quantizer.")]
    if missing or unexpected:
        raise ValueError(f"{source}: converted weights do not fit: missing {missing[:6]}, unexpected {unexpected[:6]}")
    model.quantizer.load_codebook(torch.nn.functional.normalize(codebook, dim=1))
    return model.eval()


def convert_beit(
    checkpoint: str | os.PathLike[str], out: str | os.PathLike[str], *, heads: int | None = None, trust_pickle: bool = False
) -> Path:
    """Convert a BEiT v2 VQ-KD ``.pth`` into a vq checkpoint (family ``vqkd``).

    Read by :func:`vq_core.load_foreign_checkpoint` (weights-only unpickler; the ``args`` Namespace is
    allowlisted); ``trust_pickle`` unpickles anything else the file needs."""
    payload = load_foreign_checkpoint(checkpoint, trust_pickle=trust_pickle)
    state = unwrap_state_dict(payload, ["model", "state_dict"], path=str(checkpoint))
    model = beit_state_to_vqkd(state, heads=heads, source=str(checkpoint))
    return save_tokenizer(model, out, state={"converted_from": f"beit2:{Path(checkpoint).name}"})
