"""Shared machinery of the checkpoint converters: key renaming, q/k/v fusion, config inference.

A converter is a list of ``(pattern, replacement)`` regex rules from the foreign key layout to ours,
plus the attention fusion (foreign checkpoints keep separate ``q``/``k``/``v`` 1x1 convs, ours one
``qkv`` conv).  The autoencoder's shape is read off the converted weights, so no foreign config file is
needed: widths from conv shapes, depth from block counts, attention placement from which levels hold
attention weights.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import torch

from vq_core import VectorQuantizerConfig
from vq_tokenizers.vqgan import VQGAN, VQGANConfig

Rules = Sequence[tuple[str, str | Callable[[re.Match[str]], str]]]

# names shared by taming and LlamaGen inside one block
BLOCK_RULES: Rules = [(r"\.nin_shortcut\.", ".shortcut.")]


def rename(state: dict[str, torch.Tensor], rules: Rules, *, drop: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Apply every rule (``re.sub``, in order) to each key; keys under a ``drop`` prefix are left out."""
    compiled = [(re.compile(p), r) for p, r in rules]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if any(key.startswith(prefix) for prefix in drop):
            continue
        new = key
        for pattern, replacement in compiled:
            new = pattern.sub(replacement, new)
        out[new] = value
    return out


def fuse_qkv(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Concatenate ``<attn>.q``, ``.k``, ``.v`` conv weights/biases into ``<attn>.qkv`` (q, k, v order)."""
    out = dict(state)
    query = re.compile(r"^(.*)\.q\.(weight|bias)$")
    for stem, kind in [m.groups() for k in state if (m := query.match(k))]:
        parts = [f"{stem}.{name}.{kind}" for name in ("q", "k", "v")]
        missing = [p for p in parts if p not in state]
        if missing:
            raise KeyError(f"attention weights incomplete: {missing}")
        out[f"{stem}.qkv.{kind}"] = torch.cat([state[p] for p in parts])
        for p in parts:
            del out[p]
    return out


def level_indices(state: dict[str, torch.Tensor], pattern: str) -> list[int]:
    regex = re.compile(pattern)
    return sorted({int(m.group(1)) for k in state if (m := regex.match(k))})


def infer_autoencoder_shape(state: dict[str, torch.Tensor], image_size: int) -> dict[str, Any]:
    """Read ``AutoencoderConfig`` fields off converted (our-layout) encoder/decoder weights."""
    ch = state["encoder.conv_in.weight"].shape[0]
    levels = level_indices(state, r"encoder\.down\.(\d+)\.")
    ch_mult = tuple(state[f"encoder.down.{i}.res.0.conv1.weight"].shape[0] // ch for i in levels)
    num_res_blocks = len(level_indices(state, r"encoder\.down\.0\.res\.(\d+)\."))
    enc_attn = {image_size // 2**i for i in levels if f"encoder.down.{i}.attn.0.qkv.weight" in state}
    dec_attn = {
        image_size // 2 ** (len(levels) - 1 - i) for i in levels if f"decoder.up.{i}.attn.0.qkv.weight" in state
    }
    if enc_attn != dec_attn:
        raise ValueError(f"encoder attention at {sorted(enc_attn)} but decoder at {sorted(dec_attn)}: not a supported layout")
    return {
        "image_size": image_size,
        "ch": ch,
        "ch_mult": ch_mult,
        "num_res_blocks": num_res_blocks,
        "attn_resolutions": tuple(sorted(enc_attn, reverse=True)),
        "z_channels": state["encoder.conv_out.weight"].shape[0],
    }


def unwrap_state_dict(payload: Any, keys: Sequence[str], *, path: str) -> dict[str, torch.Tensor]:
    """The weights inside a foreign checkpoint file (first of ``keys`` present, or the dict itself)."""
    if not isinstance(payload, dict):
        raise ValueError(f"{path} does not hold a state dict (got {type(payload).__name__})")
    for key in keys:
        if key in payload and isinstance(payload[key], dict):
            return payload[key]
    if all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload
    raise ValueError(f"{path}: no weights under any of {list(keys)} (top-level keys: {sorted(payload)[:8]})")


def build_vqgan(
    state: dict[str, torch.Tensor], codebook: torch.Tensor, *, distance: str, image_size: int, source: str
) -> VQGAN:
    """A VQGAN shaped after, and loaded with, converted (our-layout) weights and a codebook."""
    shape = infer_autoencoder_shape(state, image_size)
    quantizer = VectorQuantizerConfig(codebook_size=codebook.shape[0], dim=codebook.shape[1], distance=distance)
    model = VQGAN(VQGANConfig(**shape, quantizer=quantizer))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("quantizer.")]
    if missing or unexpected:
        raise ValueError(f"{source}: converted weights do not fit the inferred model: missing {missing[:6]}, unexpected {unexpected[:6]}")
    model.load_codebook(codebook)
    return model.eval()
