"""The evaluate stage: tokenizer reconstruction metrics and grid, and scores of the AR samples, via vq-eval.

PSNR, SSIM and codebook usage/perplexity need no weights and are always computed.  LPIPS, rFID, gFID
and Inception Score need weights that cannot be downloaded here; each is computed when vq-eval finds
its weights (config paths, environment variables, caches) and otherwise listed under ``skipped`` with
the reason, so a report never silently lacks a number.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from vq_core import atomic_write_bytes
from vq_eval import (
    ReferenceStats,
    WeightsNotFoundError,
    evaluate_generation,
    evaluate_reconstruction,
    list_images,
    load_fid_inception,
    load_lpips,
    open_images,
    png_bytes,
    reconstruction_grid,
)

from vq_pipeline.config import EvalStage

log = logging.getLogger(__name__)

RECONSTRUCTION_GRID = "reconstructions.png"


def _optional(what: str, load: Any, skipped: dict[str, str]) -> Any:
    """``load()``, or None with the reason recorded when its weights are not on this machine."""
    try:
        return load()
    except WeightsNotFoundError as err:
        skipped[what] = str(err).splitlines()[0]
        log.warning("%s skipped: %s", what, skipped[what])
        return None


def evaluate(
    tokenizer: Any, eval_images: Path, num_images: int, samples: Path, settings: EvalStage, out: Path, *, device: torch.device
) -> dict[str, Any]:
    """Reconstruction metrics of ``tokenizer`` on the ``num_images`` of ``eval_images`` (at most
    ``settings.max_images``) and generation metrics of the PNGs in ``samples``.

    Writes the original | reconstruction grid into ``out`` and returns flat metrics plus ``skipped``.
    """
    skipped: dict[str, str] = {}
    lpips_model = _optional("lpips", lambda: load_lpips(backbone_weights=settings.lpips_backbone, device=device), skipped)
    inception = _optional("rfid, fid, inception_score", lambda: load_fid_inception(settings.inception_weights, device=device), skipped)
    metrics = ["psnr", "ssim", "usage"] + (["lpips"] if lpips_model is not None else []) + (["rfid"] if inception is not None else [])
    # Grid examples spread evenly over the evaluated images (sources are often ordered by class or photo).
    stride = max(1, min(settings.max_images, num_images) // settings.grid_images)
    examples: list[tuple[torch.Tensor, torch.Tensor]] = []
    seen = 0

    def keep(originals: torch.Tensor, reconstructions: torch.Tensor, indices: torch.Tensor | None) -> None:
        nonlocal seen
        picked = [i for i in range(originals.shape[0]) if (seen + i) % stride == 0]
        seen += originals.shape[0]
        examples.append((originals[picked].cpu(), reconstructions[picked].cpu()))

    images = open_images(eval_images, batch_size=settings.batch_size, limit=settings.max_images)
    tokenizer.to(device).eval()
    reconstruction = evaluate_reconstruction(
        tokenizer, images, metrics=metrics, inception=inception, lpips_model=lpips_model, on_batch=keep, device=device
    )
    originals = torch.cat([o for o, _ in examples])[: settings.grid_images]
    recons = torch.cat([r for _, r in examples])[: settings.grid_images]
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / RECONSTRUCTION_GRID, png_bytes(reconstruction_grid(originals, recons)))
    result: dict[str, Any] = {("recon_images" if k == "num_images" else k): v for k, v in reconstruction.items()}
    if inception is not None:
        reference = ReferenceStats.load(settings.fid_reference) if settings.fid_reference else None
        if reference is None:
            skipped["fid"] = "no eval.fid_reference (vq-eval fid-cache) given; Inception Score only"
        splits = 10 if len(list_images(samples)) >= 100 else 1
        generation = evaluate_generation(inception, open_images(samples, batch_size=settings.batch_size), reference=reference, splits=splits)
        result.update({f"gen_{k}": v for k, v in generation.items()})
    result["skipped"] = skipped
    return result

