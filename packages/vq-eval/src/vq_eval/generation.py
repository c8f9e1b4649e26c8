"""Every generation metric of ADM's evaluator, plus KID, from one pass of the Inception over the samples.

``vq-eval generation`` reports what generation papers (LlamaGen, DiT, MAR via guided-diffusion's
``evaluations/evaluator.py``) report, computed their way:

==========  =================================================================================
FID         Frechet distance of 2048-d pool features to the reference's ``mu``/``sigma``
sFID        the same on the 2023-d spatial features (``mixed_6/conv``, first 7 channels)
IS          Inception Score over consecutive splits of 5000 samples (ADM), unbiased logits
Precision   share of samples inside the reference's k = 3 nearest-neighbour manifold
Recall      share of reference images inside the samples' k = 3 manifold
KID         unbiased polynomial-kernel MMD^2, 100 subsets of 1000 (torch-fidelity's defaults)
==========  =================================================================================

Precision, recall and KID need the reference's individual features: they come from the
reference's images (an ADM reference batch, a folder, a shard set) or from the ``features`` a
``vq-eval fid-cache`` file stores; a statistics-only reference gives FID and sFID alone and the
others are reported as skipped.  As in ADM, stored ``mu``/``sigma`` of a reference batch are used for
FID/sFID even when its images are there.

Every metric is reported with the number of samples and reference images behind it, the
reference, the Inception weights' sha256 and the preprocessing (:attr:`GenerationResult.provenance`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vq_core import progress
from vq_eval.distributed import gather_rows
from vq_eval.fid import provenance, small_sample_warning
from vq_eval.frechet import FrechetMethod
from vq_eval.inception import FIDInceptionV3
from vq_eval.inception_score import ADM_SPLIT_SIZE, inception_score_of_logits
from vq_eval.kid import KID_SEED, KID_SUBSET_SIZE, KID_SUBSETS, kernel_inception_distance
from vq_eval.precision_recall import NEIGHBOURHOOD, precision_recall
from vq_eval.reference import ReferenceError, ReferenceStats
from vq_eval.sources import ImageBatches
from vq_eval.statistics import FeatureStatistics

log = logging.getLogger(__name__)

GENERATION_METRICS = ("fid", "sfid", "inception_score", "precision", "recall", "kid")


@dataclass
class InceptionActivations:
    """Per-image pool (N, 2048), spatial (N, 2023) features and unbiased logits (N, 1008), float32, all ranks."""

    pool: np.ndarray
    spatial: np.ndarray
    logits: np.ndarray

    def __len__(self) -> int:
        return self.pool.shape[0]

    def statistics(self, meta: dict[str, Any], *, keep_features: bool = False) -> ReferenceStats:
        """Mean/covariance of pool and spatial features as a reference (float64 sums)."""
        pool, spatial = FeatureStatistics(), FeatureStatistics()
        for start in range(0, len(self), 4096):  # float64 copies of a block at a time
            pool.update(self.pool[start : start + 4096])
            spatial.update(self.spatial[start : start + 4096])
        return ReferenceStats.from_statistics(pool, meta, spatial=spatial, features=self.pool if keep_features else None)


@torch.inference_mode()
def inception_activations(
    inception: FIDInceptionV3, image_batches: Iterable[torch.Tensor], *, show_progress: bool | None = None
) -> InceptionActivations:
    """Run the network once over every image; under ``torch.distributed`` each rank's rows are gathered in order."""
    device = next(inception.parameters()).device
    pools, spatials, logits = [], [], []
    for images in progress(image_batches, enabled=show_progress, desc="inception", unit="batch"):
        features = inception.features(images.to(device))
        pools.append(features.pool.float().cpu().numpy())
        spatials.append(features.spatial.float().cpu().numpy())
        logits.append(inception.unbiased_logits(features.pool).float().cpu().numpy())
    if not pools:
        raise ValueError("no images to evaluate")
    return InceptionActivations(*(gather_rows(np.concatenate(part)) for part in (pools, spatials, logits)))


def reference_from_images(
    inception: FIDInceptionV3, batches: ImageBatches, *, keep_features: bool = True, show_progress: bool | None = None
) -> ReferenceStats:
    """Reference statistics (pool + spatial, and the pool features) of an image source, with provenance."""
    activations = inception_activations(inception, batches, show_progress=show_progress)
    return activations.statistics(provenance(inception, batches.meta), keep_features=keep_features)


def reference_resize(path: str | Path) -> str | None:
    """The network resize a reference was made with, read without running anything: ``"tf1"`` for an ADM
    batch, the recorded one for a ``fid-cache`` file, ``None`` for image sources (the caller's choice)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.keys())
    if "arr_0" in keys and "meta" not in keys:
        return "tf1"  # ADM's evaluator feeds the TF graph, which resizes the TF1 way
    return ReferenceStats.load(path).resize if "mu" in keys else None


def load_reference(
    path: str | Path, inception: FIDInceptionV3, *, batch_size: int = 50, show_progress: bool | None = None
) -> ReferenceStats:
    """A generation reference from a ``fid-cache`` / pytorch-fid / ADM ``.npz`` or an image source.

    An ``.npz`` with ``arr_0`` images (an ADM reference or sample batch) has its images run through
    ``inception`` for precision, recall and KID; its stored ``mu``/``sigma``/``mu_s``/``sigma_s``,
    when present, are kept for FID and sFID, as ADM's evaluator does.
    """
    from vq_eval.sample_batch import open_sample_batch
    from vq_eval.sources import open_images

    path = Path(path)
    if path.is_dir():
        return reference_from_images(inception, open_images(path, batch_size=batch_size), show_progress=show_progress)
    if not path.is_file():
        raise ReferenceError(f"reference {path} does not exist; make one with `vq-eval fid-cache SOURCE --out {path}` or pass an ADM batch")
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.keys())
    if "arr_0" not in keys:
        return ReferenceStats.load(path)
    batch = open_sample_batch(path)
    computed = reference_from_images(inception, open_images(path, batch_size=batch_size), show_progress=show_progress)
    if not batch.has_statistics:
        return computed
    stored = ReferenceStats.load(path)
    if stored.resize and stored.resize != inception.resize:
        raise ReferenceError(
            f"reference {path}: its stored statistics were made with the {stored.resize!r} resize of the TF graph, "
            f"but the Inception runs {inception.resize!r}; pass --resize {stored.resize}"
        )
    return ReferenceStats(
        mu=stored.mu, sigma=stored.sigma, n=stored.n, meta={**computed.meta, **stored.meta, "statistics": "stored in the file (ADM)"},
        mu_s=stored.mu_s, sigma_s=stored.sigma_s, features=computed.features,
    )  # fmt: skip


@dataclass
class GenerationResult:
    """Flat ``metrics`` (JSON-able), per-metric ``details`` (n, reference, settings), ``provenance`` and ``warnings``."""

    metrics: dict[str, float | int] = field(default_factory=dict)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {**self.metrics, "details": self.details, "skipped": self.skipped, "provenance": self.provenance,
                "warnings": self.warnings}  # fmt: skip


def evaluate_samples(
    inception: FIDInceptionV3,
    image_batches: ImageBatches | Iterable[torch.Tensor],
    *,
    reference: ReferenceStats | None = None,
    fid_method: FrechetMethod = "eigh",
    split_size: int = ADM_SPLIT_SIZE,
    nearest_k: int = NEIGHBOURHOOD,
    kid_subsets: int = KID_SUBSETS,
    kid_subset_size: int = KID_SUBSET_SIZE,
    kid_seed: int = KID_SEED,
    show_progress: bool | None = None,
) -> GenerationResult:
    """FID, sFID, IS, precision, recall and KID of generated images against ``reference`` (IS alone without one)."""
    image_meta = dict(getattr(image_batches, "meta", {}))
    activations = inception_activations(inception, image_batches, show_progress=show_progress)
    samples = activations.statistics(provenance(inception, image_meta))
    n = len(activations)
    result = GenerationResult(metrics={"num_images": n})
    ref_name = "-"
    if reference is not None:
        reference.check_compatible(samples, where="samples")
        reference.check_images(image_meta, where="samples")
        ref_name = f"{reference.meta.get('source', '?')}"
    result.provenance = {
        "num_images": n,
        "samples": image_meta,
        "reference": None if reference is None else _describe(reference),
        "inception_weights_sha256": inception.weights_sha256,
        "inception_weights_path": inception.weights_path,
        "resize": inception.resize,
        "preprocessing": inception.preprocessing,
    }

    mean, std, splits = inception_score_of_logits(activations.logits, split_size)
    result.metrics["inception_score"], result.metrics["inception_score_std"] = mean, std
    result.details["inception_score"] = {"n": n, "reference": "-", "splits": splits, "split_size": split_size}
    if reference is None:
        for name in ("fid", "sfid", "precision", "recall", "kid"):
            result.skipped[name] = "no --ref given"
        return result

    result.metrics["fid"] = reference.frechet_distance(samples, method=fid_method)
    result.details["fid"] = {"n": n, "n_reference": reference.n, "reference": ref_name, "statistics": reference.meta.get("statistics", "computed")}
    warning = small_sample_warning(n)
    if warning:
        result.warnings.append(f"{warning} (used {n} samples)")
        log.warning("%s (used %d samples)", warning, n)
    if reference.spatial is not None:
        result.metrics["sfid"] = reference.spatial.frechet_distance(samples.spatial, method=fid_method)
        result.details["sfid"] = {**result.details["fid"], "features": "mixed_6/conv[..., :7] (Mixed_6d.branch1x1), 2023-d"}
    else:
        result.skipped["sfid"] = f"reference {ref_name} has no spatial statistics (mu_s/sigma_s); remake it with vq-eval fid-cache"
    if reference.features is None:
        for name in ("precision", "recall", "kid"):
            result.skipped[name] = f"reference {ref_name} holds statistics only; pass its images or a fid-cache made with --features"
        return result
    ref_features = reference.features
    if min(n, len(ref_features)) <= nearest_k:
        for name in ("precision", "recall"):
            result.skipped[name] = f"k={nearest_k} manifolds need more than {nearest_k} samples and reference images"
    else:
        _precision_recall(result, ref_features, activations.pool, nearest_k, ref_name, next(inception.parameters()).device)
    kid, kid_std, size = kernel_inception_distance(activations.pool, ref_features, subsets=kid_subsets, subset_size=kid_subset_size,
                                                   seed=kid_seed)  # fmt: skip
    result.metrics["kid"], result.metrics["kid_std"] = kid, kid_std
    result.details["kid"] = {"n": n, "n_reference": len(ref_features), "reference": ref_name, "subsets": kid_subsets,
                             "subset_size": size, "seed": kid_seed}  # fmt: skip
    if size < kid_subset_size:
        result.warnings.append(f"KID subsets of {size} images instead of {kid_subset_size} (only {min(n, len(ref_features))} available)")
    return result


def _precision_recall(
    result: GenerationResult, reference: np.ndarray, samples: np.ndarray, k: int, ref_name: str, device: torch.device
) -> None:
    precision, recall = precision_recall(reference, samples, k, device=device)
    result.metrics["precision"], result.metrics["recall"] = precision, recall
    for name in ("precision", "recall"):
        result.details[name] = {"n": len(samples), "n_reference": len(reference), "reference": ref_name, "k": k}


def _describe(reference: ReferenceStats) -> dict[str, Any]:
    keys = ("source", "source_kind", "split", "resolution", "transform", "resize", "network_resize", "weights_sha256",
            "manifest_sha256", "statistics", "feature_extractor")  # fmt: skip
    return {"n": reference.n, **{k: reference.meta[k] for k in keys if k in reference.meta}}


def format_generation_table(result: GenerationResult) -> str:
    """ADM's numbers in one table: metric, value, samples, reference images, reference; then the provenance."""
    rows = [("metric", "value", "n", "n_ref", "reference")]
    names = {"inception_score": "IS", "fid": "FID", "sfid": "sFID", "precision": "Precision", "recall": "Recall", "kid": "KID"}
    for key in ("inception_score", "fid", "sfid", "precision", "recall", "kid"):
        if key not in result.metrics:
            continue
        value = f"{result.metrics[key]:.4f}" if key != "kid" else f"{result.metrics[key]:.6f}"
        if key in ("inception_score", "kid"):
            value += f" +- {result.metrics[key + '_std']:.4g}"
        detail = result.details.get(key, {})
        rows.append((names[key], value, str(detail.get("n", "")), str(detail.get("n_reference", "-")), str(detail.get("reference", "-"))))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"{names[k]}: skipped ({why})" for k, why in result.skipped.items()]
    p = result.provenance
    lines.append(f"inception weights sha256 {str(p.get('inception_weights_sha256'))[:16]}  preprocessing: {p.get('preprocessing')}")
    lines.append(f"samples: {p.get('samples', {}).get('source', '?')} (transform: {p.get('samples', {}).get('transform', '?')}, "
                 f"{p.get('samples', {}).get('resolution', '?')})")  # fmt: skip
    return "\n".join(lines)
