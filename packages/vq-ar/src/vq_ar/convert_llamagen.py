"""LlamaGen's released class-conditional GPT checkpoints (``c2i_B_256.pt`` ...) -> vq-ar checkpoints.

LlamaGen's ``Transformer`` (``autoregressive/models/gpt.py``) and :class:`~vq_ar.model.ARTransformer`
share the tensor layout - fused ``wqkv`` (q, k, v rows, heads contiguous), SwiGLU ``w1``/``w3``/``w2``,
RMSNorm gains, untied ``output`` - so conversion is one rename, ``cls_embedding.embedding_table`` ->
``class_embedding`` (its last row, index ``num_classes``, is LlamaGen's label-dropout class, which is
our null class too).  What is not a weight is dropped: ``freqs_cis`` (a buffer in the code the
releases were saved with), ``causal_mask`` and KV-cache buffers.  The converted config uses
``rope_class="zero"``, LlamaGen's cos = sin = 0 class row, without which the logits differ.

Nothing in the file says the model's shape outright, so it is read off the tensors: width and depth
from ``tok_embeddings`` and the ``layers.N`` keys, vocabulary and classes from the embedding rows, the
head count from the named size those match (B/L/XL/XXL; or ``--size`` / ``--n-head``), and the token
grid from ``freqs_cis`` when present (and checked against our table), else from the release's name
(``c2i_L_256.pt``: 256 px / 16 = 16x16) or ``--grid``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import torch

from vq_ar.checkpoint import save_ar
from vq_ar.config import SIZES, ARConfig
from vq_ar.model import ARTransformer
from vq_ar.presets import LLAMAGEN_MODEL
from vq_ar.rope import rope_table
from vq_core import CheckpointError, DatasetInfo, TokenizerInfo
from vq_core.io import file_sha256

log = logging.getLogger(__name__)

RELEASE_PAGE = "https://huggingface.co/FoundationVision/LlamaGen"
RENAMES = {"cls_embedding.embedding_table.weight": "class_embedding.weight"}
NOT_WEIGHTS = re.compile(r"^(freqs_cis|causal_mask|layers\.\d+\.attention\.kv_cache\.[kv]_cache)$")
WRAPPER_KEYS = ("model", "module", "state_dict")  # sample_c2i.py's order: DDP, DeepSpeed, other
PREFIXES = ("module.", "_orig_mod.")  # DDP / torch.compile wrappers around a saved state dict
LLAMAGEN_SIZES = ("B", "L", "XL", "XXL")
DOWNSAMPLE = 16  # every c2i GPT release models VQ-16 tokens: grid = image size / 16
FREQS_TOLERANCE = 1e-4  # LlamaGen computes its table in float32


def llamagen_weights(payload: Any, *, path: str | os.PathLike[str], ema: bool = False) -> dict[str, torch.Tensor]:
    """The GPT state dict inside a LlamaGen file: ``{"model": ...}`` (DDP), ``"module"``, ``"state_dict"``
    or a bare state dict (FSDP); ``ema`` takes the ``"ema"`` weights of an ``--ema`` run instead."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} does not hold a LlamaGen checkpoint dict (got {type(payload).__name__})")
    keys = ("ema",) if ema else WRAPPER_KEYS
    state = next((payload[k] for k in keys if isinstance(payload.get(k), dict)), None)
    if state is None and not ema and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        state = payload
    if state is None:
        wanted = "'ema' (the run was not trained with --ema?)" if ema else f"any of {list(WRAPPER_KEYS)}"
        raise CheckpointError(f"{path}: no GPT weights under {wanted}; top-level keys: {sorted(payload)[:8]}")
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in PREFIXES:
            key = key.removeprefix(prefix)
        out[key] = value
    return out


def _layer_count(state: dict[str, torch.Tensor]) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))}
    if indices != set(range(len(indices))):
        raise CheckpointError(f"LlamaGen layers are not numbered 0..n-1: {sorted(indices)[:8]}")
    return len(indices)


def _grid_from_freqs(freqs: torch.Tensor) -> int:
    side = math.isqrt(freqs.shape[0] - 1)
    if freqs.dim() != 3 or freqs.shape[-1] != 2 or side * side != freqs.shape[0] - 1:
        raise CheckpointError(f"freqs_cis of shape {tuple(freqs.shape)} is not (1 + grid^2, head_dim/2, 2) (one class token)")
    return side


def _grid_from_name(path: str | os.PathLike[str]) -> int | None:
    match = re.search(r"_(\d{3,4})(?:\D|$)", Path(path).stem)
    return int(match.group(1)) // DOWNSAMPLE if match else None


def infer_llamagen_config(
    state: dict[str, torch.Tensor],
    *,
    size: str | None = None,
    n_head: int | None = None,
    grid: int | None = None,
    path: str | os.PathLike[str] = "checkpoint",
) -> ARConfig:
    """Our config for a LlamaGen c2i GPT state dict (shapes only; the tensors may be on the meta device)."""
    if any(k.startswith("cls_embedding.cap_proj") for k in state):
        raise CheckpointError(f"{path} is a text-conditional (t2i) LlamaGen GPT; only class-conditional (c2i) ones convert")
    for key in ("tok_embeddings.weight", "cls_embedding.embedding_table.weight", "output.weight"):
        if key not in state:
            raise CheckpointError(f"{path} has no {key!r}; is it a LlamaGen c2i GPT checkpoint?")
    vocab, dim = state["tok_embeddings.weight"].shape
    class_rows = state["cls_embedding.embedding_table.weight"].shape[0]
    n_layer = _layer_count(state)
    if size is None:
        matches = [s for s in LLAMAGEN_SIZES if SIZES[s][:2] == (n_layer, dim)]
        size = matches[0] if matches else None
    elif SIZES[size][:2] != (n_layer, dim):
        raise CheckpointError(f"{path} has {n_layer} layers x {dim} wide, but --size {size} is {SIZES[size][0]} x {SIZES[size][1]}")
    if n_head is None:
        if size is None:
            raise CheckpointError(f"{path} ({n_layer} layers x {dim} wide) is no GPT-B/L/XL/XXL; pass --n-head (or --size)")
        n_head = SIZES[size][2]
    if grid is None and "freqs_cis" in state:
        grid = _grid_from_freqs(state["freqs_cis"])
    if grid is None:
        grid = _grid_from_name(path)
        if grid is not None:
            log.info("token grid %dx%d from the file name %s (image size / %d)", grid, grid, Path(path).name, DOWNSAMPLE)
    if grid is None:
        raise CheckpointError(f"{path} records no token grid (no freqs_cis, no _256/_384 in its name); pass --grid (16 for 256 px)")
    fields = {**LLAMAGEN_MODEL, "multiple_of": 256}
    config = ARConfig.from_dict(
        {"vocab_size": vocab, "num_classes": class_rows - 1, "grid": (grid, grid), "dim": dim, "n_layer": n_layer, "n_head": n_head, **fields},
        source=f"LlamaGen checkpoint {path}",
    )
    w1, wqkv = state.get("layers.0.feed_forward.w1.weight"), state.get("layers.0.attention.wqkv.weight")
    if w1 is not None and w1.shape[0] != config.ffn_hidden:
        raise CheckpointError(f"{path} has FFN width {w1.shape[0]}, LlamaGen's formula gives {config.ffn_hidden} for dim {dim}")
    if wqkv is not None and wqkv.shape[0] != 3 * dim:
        raise CheckpointError(f"{path} uses grouped-query attention (wqkv rows != 3 x dim); LlamaGen's c2i models do not")
    return config


def _check_freqs(freqs: torch.Tensor, config: ARConfig, path: str | os.PathLike[str]) -> None:
    """LlamaGen's stored table must be ours (2D, zero class row), or the weights were trained with another."""
    ours = rope_table(config).permute(1, 2, 0)  # (1 + N, pairs, (cos, sin)) like freqs_cis
    if freqs.shape != ours.shape or (freqs.double() - ours).abs().max() > FREQS_TOLERANCE:
        raise CheckpointError(
            f"{path}: its freqs_cis is not LlamaGen's 2D rotary table for a {config.grid} grid with base "
            f"{config.rope_base}; pass --grid for another token grid"
        )


def llamagen_state_to_ar(state: dict[str, torch.Tensor], config: ARConfig, *, path: str | os.PathLike[str] = "checkpoint") -> dict[str, torch.Tensor]:
    """Rename LlamaGen's keys to ours, drop the non-weights, and refuse anything left unaccounted for."""
    if "freqs_cis" in state:
        _check_freqs(state["freqs_cis"], config, path)
    converted = {RENAMES.get(k, k): v for k, v in state.items() if not NOT_WEIGHTS.match(k)}
    with torch.device("meta"):
        expected = {k: v.shape for k, v in ARTransformer(config).state_dict().items()}
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    wrong = [f"{k} {tuple(converted[k].shape)} != {tuple(s)}" for k, s in expected.items() if k in converted and converted[k].shape != s]
    if missing or unexpected or wrong:
        raise CheckpointError(f"{path} does not fit LlamaGen's GPT layout: missing {missing[:4]}, unexpected {unexpected[:4]}, shapes {wrong[:3]}")
    return {k: v.float() for k, v in converted.items()}


def _tokenizer_info(tokenizer: str | os.PathLike[str] | None, config: ARConfig) -> TokenizerInfo:
    """The converted VQ tokenizer's identity (``vq-tok convert llamagen``), or an unrecorded placeholder."""
    if tokenizer is None:
        log.warning("no --tokenizer: the checkpoint cannot find its decoder; sample with --tokens-only or convert again with it")
        return TokenizerInfo(
            name="llamagen-vq (unrecorded)", config_hash="unrecorded", checkpoint_sha256="unrecorded",
            codebook_size=config.vocab_size, grid=config.grid, dtype="int16" if config.vocab_size <= 2**15 else "int32",
            image_size=config.grid[0] * DOWNSAMPLE,
        )
    from vq_tokenizers import load_tokenizer, tokenizer_info

    model = load_tokenizer(tokenizer)
    if model.codebook_size != config.vocab_size or tuple(model.grid) != config.grid:
        raise CheckpointError(
            f"tokenizer {tokenizer} has codebook {model.codebook_size} and grid {tuple(model.grid)}, but the GPT models "
            f"{config.vocab_size} codes on a {config.grid} grid; pass the VQ it was trained on, at that image size"
        )
    return tokenizer_info(model, tokenizer)


class ConvertedAR(NamedTuple):
    """Where the converted checkpoint went and the config read off the release."""

    path: Path
    config: ARConfig


def convert_llamagen(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    size: str | None = None,
    n_head: int | None = None,
    grid: int | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
    ema: bool = False,
    trust_pickle: bool = False,
) -> ConvertedAR:
    """Write ``out`` (a vq-ar checkpoint file) from a LlamaGen c2i GPT release.

    The file is read with ``torch.load(weights_only=True)`` and vq-core's allowlist (LlamaGen stores
    its argparse ``args``); ``trust_pickle`` unpickles it in full, for files one trusts.
    """
    from vq_core.foreign_checkpoint import load_foreign_checkpoint

    payload = load_foreign_checkpoint(checkpoint, trust_pickle=trust_pickle)
    state = llamagen_weights(payload, path=checkpoint, ema=ema)
    config = infer_llamagen_config(state, size=size, n_head=n_head, grid=grid, path=checkpoint)
    model = ARTransformer(config)
    model.load_state_dict(llamagen_state_to_ar(state, config, path=checkpoint))
    steps = payload.get("steps") if isinstance(payload, dict) else None
    dataset = DatasetInfo(name="imagenet", source=f"LlamaGen release {Path(checkpoint).name}", num_classes=config.num_classes)
    provenance = {"converted_from": {"format": "llamagen-gpt-c2i", "file": Path(checkpoint).name, "sha256": file_sha256(checkpoint), "ema": ema}}
    path = save_ar(
        out, model, tokenizer=_tokenizer_info(tokenizer, config), dataset=dataset,
        step=steps if isinstance(steps, int) else 0, state=provenance,
    )
    return ConvertedAR(path, config)
