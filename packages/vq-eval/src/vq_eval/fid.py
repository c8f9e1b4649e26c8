"""FID and Inception Score over streams of image batches.

Features are reduced batch by batch into :class:`FeatureStatistics` (and :class:`InceptionScore`),
so memory does not grow with the number of images; under ``torch.distributed`` every rank feeds
its own images and the statistics are all-reduced at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import torch

from vq_core import progress
from vq_eval.frechet import FrechetMethod
from vq_eval.inception import POOL_DIM, PREPROCESSING, FIDInceptionV3
from vq_eval.inception_score import InceptionScore
from vq_eval.reference import ReferenceStats
from vq_eval.statistics import FeatureStatistics
from vq_eval.version import __version__

log = logging.getLogger(__name__)

FEATURE_EXTRACTOR = "pytorch-fid Inception-v3 (TF 2015-12-05 graph), 2048-d pool3"
UNBIASED_FID_IMAGES = 2048  # below the feature dimension the covariance is rank-deficient and FID is biased upwards


def small_sample_warning(count: int, metric: str = "FID") -> str | None:
    """The warning a metric on fewer than 2,048 images carries (``None`` when there are enough)."""
    if count >= UNBIASED_FID_IMAGES:
        return None
    return (
        f"{metric} on {count} images is biased (upwards, and more so the fewer images): fewer than "
        f"{UNBIASED_FID_IMAGES} images give a rank-deficient covariance; compare only with {metric} on {count} images"
    )


@torch.inference_mode()
def accumulate_inception(
    inception: FIDInceptionV3, images: torch.Tensor, stats: FeatureStatistics, score: InceptionScore | None = None
) -> None:
    """Add one batch of [-1, 1] images to the FID statistics (and the Inception Score, if given)."""
    device = next(inception.parameters()).device
    pool = inception.pool_features(images.to(device))
    stats.update(pool)
    if score is not None:
        score.update(inception.unbiased_logits(pool))


def inception_statistics(
    inception: FIDInceptionV3,
    image_batches: Iterable[torch.Tensor],
    *,
    splits: int | None = None,
    show_progress: bool | None = None,
) -> tuple[FeatureStatistics, InceptionScore | None]:
    """Pool-feature statistics of all images (and their Inception Score with ``splits``), all-reduced."""
    stats = FeatureStatistics()
    score = InceptionScore(splits) if splits else None
    for images in progress(image_batches, enabled=show_progress, desc="inception", unit="batch"):
        accumulate_inception(inception, images, stats, score)
    stats.all_reduce()
    if score is not None:
        score.all_reduce()
    return stats, score


def provenance(inception: FIDInceptionV3, source_meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """What reference statistics record about the network and the images (see :class:`ReferenceStats`)."""
    return {
        "feature_extractor": FEATURE_EXTRACTOR,
        "dims": POOL_DIM,
        "weights_path": inception.weights_path,
        "weights_sha256": inception.weights_sha256,
        "resize": getattr(inception, "resize", "pytorch-fid"),
        "network_resize": getattr(inception, "preprocessing", PREPROCESSING),
        "created": datetime.now(timezone.utc).isoformat(),
        "tool_version": f"vq-eval {__version__}",
        **(source_meta or {}),
    }


def compute_reference(
    inception: FIDInceptionV3,
    image_batches: Iterable[torch.Tensor],
    *,
    source_meta: dict[str, Any] | None = None,
    show_progress: bool | None = None,
) -> ReferenceStats:
    """Reference statistics of a dataset split, with provenance (save with ``.save(path)``)."""
    stats, _ = inception_statistics(inception, image_batches, show_progress=show_progress)
    return ReferenceStats.from_statistics(stats, provenance(inception, source_meta))


def evaluate_generation(
    inception: FIDInceptionV3,
    image_batches: Iterable[torch.Tensor],
    *,
    reference: ReferenceStats | None = None,
    splits: int = 10,
    fid_method: FrechetMethod = "eigh",
    show_progress: bool | None = None,
) -> dict[str, float | int]:
    """FID against ``reference`` (when given) and Inception Score (``splits`` > 0) of generated images."""
    stats, score = inception_statistics(inception, image_batches, splits=splits, show_progress=show_progress)
    result: dict[str, float | int] = {"num_images": stats.count}
    if reference is not None:
        generated = ReferenceStats.from_statistics(stats, provenance(inception))
        result["fid"] = reference.frechet_distance(generated, method=fid_method)
        warning = small_sample_warning(stats.count)
        if warning:
            log.warning("%s", warning)
    if score is not None:
        result["inception_score"], result["inception_score_std"] = score.compute()
    return result
