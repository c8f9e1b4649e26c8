"""Reconstruction metrics of a tokenizer (or any autoencoder) in one streaming pass.

:func:`evaluate_reconstruction` takes anything with ``encode``/``decode`` (the vq-tokenizers
``Tokenizer`` interface) or a plain ``images -> (reconstructions, indices | None)`` function, so it
does not import vq-tokenizers and can be tested with a stub.  Per batch it computes per-image PSNR,
SSIM and LPIPS (averaged over images), Inception statistics for rFID, and token counts for codebook
usage; nothing but running sums is kept.

By default originals and reconstructions are rounded to 8-bit levels first (``quantize=True``):
that is what a saved PNG holds, and what published tokenizer numbers are computed on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from vq_core import progress
from vq_eval.codebook import new_usage, usage_summary
from vq_eval.distributed import all_reduce_sum, is_distributed
from vq_eval.fid import accumulate_inception, provenance
from vq_eval.frechet import FrechetMethod
from vq_eval.inception import FIDInceptionV3
from vq_eval.psnr import psnr
from vq_eval.reference import ReferenceStats
from vq_eval.ssim import ssim
from vq_eval.names import RECONSTRUCTION_METRICS
from vq_eval.statistics import FeatureStatistics

DATA_RANGE = 2.0  # images are in [-1, 1]

ReconstructFn = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
BatchCallback = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], None]


@runtime_checkable
class Autoencoder(Protocol):
    """What evaluation needs of a tokenizer: images in [-1, 1] -> token ids -> images in [-1, 1]."""

    def encode(self, images: torch.Tensor) -> torch.Tensor: ...

    def decode(self, indices: torch.Tensor) -> torch.Tensor: ...


def to_8bit_levels(images: torch.Tensor) -> torch.Tensor:
    """Clamp [-1, 1] images and round them to the 256 levels an 8-bit image file keeps."""
    return images.clamp(-1, 1).add(1).mul(127.5).round().div(127.5).sub(1)


def _reconstruct(model: Autoencoder | ReconstructFn, images: torch.Tensor, decode: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    if isinstance(model, Autoencoder):
        indices = model.encode(images)
        return (model.decode(indices) if decode else None), indices
    reconstructions, indices = model(images)
    return reconstructions, indices


def usage_for(model: Any, codebook_size: int | None = None) -> Any:
    """A fresh ``vq_core.CodebookUsage`` sized by ``codebook_size``, else by ``model.codebook_size``."""
    size = codebook_size or getattr(model, "codebook_size", None)
    if size is None:
        raise ValueError("metric 'usage' needs codebook_size (or a model with .codebook_size)")
    return new_usage(int(size))


def _model_device(model: Any) -> torch.device:
    if isinstance(model, nn.Module):
        parameter = next(model.parameters(), None)
        if parameter is not None:
            return parameter.device
    return torch.device("cpu")


@torch.inference_mode()
def evaluate_reconstruction(
    model: Autoencoder | ReconstructFn,
    image_batches: Iterable[torch.Tensor],
    *,
    metrics: Sequence[str] = RECONSTRUCTION_METRICS,
    inception: FIDInceptionV3 | None = None,
    lpips_model: nn.Module | None = None,
    reference: ReferenceStats | None = None,
    usage: Any | None = None,
    codebook_size: int | None = None,
    quantize: bool = True,
    fid_method: FrechetMethod = "eigh",
    device: str | torch.device | None = None,
    on_batch: BatchCallback | None = None,
    show_progress: bool | None = None,
) -> dict[str, float | int | str]:
    """Every requested reconstruction metric over all batches, as a flat JSON-able dict.

    ``metrics`` is a subset of :data:`RECONSTRUCTION_METRICS`.  ``"lpips"`` needs ``lpips_model``
    (see :func:`~vq_eval.perceptual.load_lpips`), ``"rfid"`` needs ``inception``; rFID compares the
    reconstructions with ``reference`` statistics when given (the usual dataset-level rFID), else with
    the originals of the same batches.  ``"usage"`` fills ``usage`` (a ``vq_core.CodebookUsage``; one
    of ``codebook_size`` or ``model.codebook_size`` is used to make it when not given) so callers can
    plot its counts.  ``on_batch(originals, reconstructions, indices)`` sees every batch after
    quantisation, e.g. to keep examples for pictures.
    """
    unknown = sorted(set(metrics) - set(RECONSTRUCTION_METRICS))
    if unknown:
        raise ValueError(f"unknown reconstruction metrics {unknown}; choose from {list(RECONSTRUCTION_METRICS)}")
    if "lpips" in metrics and lpips_model is None:
        raise ValueError("metric 'lpips' needs lpips_model (vq_eval.load_lpips)")
    if "rfid" in metrics and inception is None:
        raise ValueError("metric 'rfid' needs inception (vq_eval.load_fid_inception)")
    if "rfid" in metrics and reference is not None:
        # a cache of another split's crop or resolution would score the preprocessing, not the tokenizer
        reference.check_images(dict(getattr(image_batches, "meta", {})), where="images", transform=True)
    if "usage" in metrics and usage is None:
        usage = usage_for(model, codebook_size)
    decode = bool(set(metrics) - {"usage"})
    device = torch.device(device) if device is not None else _model_device(model)

    # per-image sums: count, psnr, ssim, lpips
    sums = np.zeros(4, dtype=np.float64)
    recon_stats = FeatureStatistics() if "rfid" in metrics else None
    orig_stats = FeatureStatistics() if "rfid" in metrics and reference is None else None
    for images in progress(image_batches, enabled=show_progress, desc="reconstruct", unit="batch"):
        images = images.to(device)
        if quantize:
            images = to_8bit_levels(images)
        reconstructions, indices = _reconstruct(model, images, decode)
        if reconstructions is not None:
            reconstructions = to_8bit_levels(reconstructions) if quantize else reconstructions.clamp(-1, 1)
            if reconstructions.shape != images.shape:
                raise ValueError(f"model returned reconstructions of shape {tuple(reconstructions.shape)} for images {tuple(images.shape)}")
        sums[0] += images.shape[0]
        if "psnr" in metrics:
            sums[1] += psnr(reconstructions, images, data_range=DATA_RANGE).sum().item()
        if "ssim" in metrics:
            sums[2] += ssim(reconstructions, images, data_range=DATA_RANGE).sum().item()
        if "lpips" in metrics:
            sums[3] += lpips_model(reconstructions, images).double().sum().item()
        if recon_stats is not None:
            accumulate_inception(inception, reconstructions, recon_stats)
        if orig_stats is not None:
            accumulate_inception(inception, images, orig_stats)
        if "usage" in metrics:
            if indices is None:
                raise ValueError("metric 'usage' needs token indices, but the model returned None")
            usage.update(indices)
        if on_batch is not None:
            on_batch(images, reconstructions, indices)

    if is_distributed():
        sums = all_reduce_sum(sums)
    if "usage" in metrics:
        usage.all_reduce()  # token counts of every rank
    count = int(sums[0])
    if count == 0:
        raise ValueError("evaluate_reconstruction got no images")
    result: dict[str, float | int | str] = {"num_images": count}
    for index, name in ((1, "psnr"), (2, "ssim"), (3, "lpips")):
        if name in metrics:
            result[name] = float(sums[index] / count)
    if "lpips" in metrics:  # AlexNet and VGG LPIPS differ several-fold: say which one this is
        result["lpips_net"] = str(getattr(lpips_model, "pnet_type", "?"))
        result["lpips_backbone_sha256"] = str(getattr(lpips_model, "backbone_sha256", None))
    if recon_stats is not None:
        recon = ReferenceStats.from_statistics(recon_stats.all_reduce(), provenance(inception))
        if orig_stats is not None:
            against = ReferenceStats.from_statistics(orig_stats.all_reduce(), provenance(inception))
            label = "originals"
        else:
            against = reference
            label = f"reference {reference.meta.get('source', '?')} ({reference.n} images)"
        result["rfid"] = against.frechet_distance(recon, method=fid_method)
        result["rfid_against"] = label
        # what the number means: which images, at which size, through which network and preprocessing
        source_meta = dict(getattr(image_batches, "meta", {}))
        result["rfid_n"] = count
        result["rfid_n_reference"] = against.n
        result["rfid_split"] = str(source_meta.get("split") or against.meta.get("split") or "-")
        result["rfid_resolution"] = str(source_meta.get("resolution") or against.meta.get("resolution") or f"{images.shape[-2]}x{images.shape[-1]}")
        result["rfid_transform"] = str(source_meta.get("transform", "-"))
        result["rfid_preprocessing"] = str(getattr(inception, "preprocessing", "-"))
        result["rfid_weights_sha256"] = str(getattr(inception, "weights_sha256", None))
    if "usage" in metrics:
        result.update(usage_summary(usage))
    return result
