"""A tokenizer's full evaluation: metrics, pictures and the HTML report, from one pass over the images.

Kept apart from the CLI (which only loads the checkpoint with vq-tokenizers and the weights) so it
runs on any :class:`~vq_eval.reconstruction.Autoencoder`, including test stubs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vq_eval.distributed import rank_and_world
from vq_eval.frechet import FrechetMethod
from vq_eval.inception import FIDInceptionV3
from vq_eval.plots import codebook_usage_figure, patches_per_token, png_bytes, reconstruction_grid
from vq_eval.reconstruction import RECONSTRUCTION_METRICS, Autoencoder, evaluate_reconstruction, usage_for
from vq_eval.reference import ReferenceStats
from vq_eval.report import REPORT_NAME, Picture, write_report


class ExampleCollector:
    """``on_batch`` callback keeping the first images for pictures, on the CPU.

    ``pairs`` original/reconstruction pairs for the grid; ``token_images`` images with their token
    grids for the patches-per-token picture (more images give more patches per code).
    """

    def __init__(self, pairs: int = 8, token_images: int = 64) -> None:
        self.pairs, self.token_images = pairs, token_images
        self.originals: list[torch.Tensor] = []
        self.reconstructions: list[torch.Tensor] = []
        self.images: list[torch.Tensor] = []
        self.tokens: list[torch.Tensor] = []

    @staticmethod
    def _have(chunks: list[torch.Tensor]) -> int:
        return sum(chunk.shape[0] for chunk in chunks)

    def __call__(self, originals: torch.Tensor, reconstructions: torch.Tensor | None, indices: torch.Tensor | None) -> None:
        need = self.pairs - self._have(self.originals)
        if need > 0 and reconstructions is not None:
            self.originals.append(originals[:need].cpu())
            self.reconstructions.append(reconstructions[:need].cpu())
        need = self.token_images - self._have(self.images)
        if need > 0 and indices is not None and indices.ndim == 3:
            self.images.append(originals[:need].cpu())
            self.tokens.append(indices[:need].cpu())


def tokenizer_report(
    model: Autoencoder,
    image_batches: Iterable[torch.Tensor],
    out_dir: str | os.PathLike[str],
    *,
    metrics: Sequence[str] = RECONSTRUCTION_METRICS,
    inception: FIDInceptionV3 | None = None,
    lpips_model: nn.Module | None = None,
    reference: ReferenceStats | None = None,
    codebook_size: int | None = None,
    quantize: bool = True,
    fid_method: FrechetMethod = "eigh",
    examples: int = 8,
    token_images: int = 64,
    top_codes: int = 16,
    patches: int = 12,
    seed: int = 0,
    title: str = "Tokenizer evaluation",
    details: dict[str, Any] | None = None,
    show_progress: bool | None = None,
) -> tuple[dict[str, Any], Path]:
    """Evaluate ``model`` on ``image_batches``; write ``metrics.json``, PNGs and ``report.html`` to ``out_dir``.

    Returns the metrics and the report path.  Pictures: ``reconstructions.png`` (original |
    reconstruction pairs), ``codebook_usage.png`` and ``patches_per_token.png``, each when the
    metrics that feed it were computed.  Under ``torch.distributed`` every rank feeds its own images
    and rank 0 writes the files.
    """
    usage = usage_for(model, codebook_size) if "usage" in metrics else None
    collector = ExampleCollector(examples, token_images)
    result = evaluate_reconstruction(
        model, image_batches, metrics=metrics, inception=inception, lpips_model=lpips_model, reference=reference,
        usage=usage, quantize=quantize, fid_method=fid_method, on_batch=collector, show_progress=show_progress,
    )  # fmt: skip
    if rank_and_world()[0] != 0:  # every rank holds the reduced metrics; rank 0 draws and writes
        return result, Path(out_dir) / REPORT_NAME
    pictures = []
    if collector.originals:
        grid = reconstruction_grid(torch.cat(collector.originals), torch.cat(collector.reconstructions))
        pictures.append(Picture("reconstructions", png_bytes(grid), "Original | reconstruction pairs (first images of the set)."))
    if usage is not None:
        pictures.append(
            Picture(
                "codebook_usage",
                png_bytes(codebook_usage_figure(usage.counts)),
                "Codes sorted by share of tokens vs. uniform; histogram of tokens per code.",
            )
        )
    if collector.tokens:
        figure = patches_per_token(
            torch.cat(collector.images), torch.cat(collector.tokens), top_codes=top_codes, patches=patches, seed=seed
        )
        pictures.append(Picture("patches_per_token", png_bytes(figure), "Each row: image patches under one of the most frequent codes."))
    path = write_report(out_dir, result, pictures, title=title, details=details)
    return result, path
