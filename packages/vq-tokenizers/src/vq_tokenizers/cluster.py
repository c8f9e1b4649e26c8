"""Cluster tokenizer: a frozen teacher plus a codebook of k-means centroids of its patch features.

``encode`` = teacher patch features -> index of the most cosine-similar centroid, on the teacher's grid.
There is no trained encoder at all, so fitting is fast and its memory is bounded by one batch of
features plus the (K, D) codebook, whatever the dataset size:

1. **mini-batch k-means** (vq-core ``MiniBatchKMeans``, cosine, k-means++ seeding on the first
   ``init_samples`` features) streamed over the images for ``epochs`` passes;
2. **exact Lloyd passes**, streamed: each pass accumulates per-code sums and counts over the whole
   dataset, then moves every used code to the normalised mean of its features - the same update as
   in-memory k-means, without holding the features;
3. optional **anchor passes** (CVQ-VAE style): during a pass every code remembers its closest feature
   (its anchor); afterwards each code moves toward its anchor by ``alpha = exp(-10 K p)``, where ``p``
   is the share of features it won - unused codes jump onto their anchor, well-used codes stay - and
   a Lloyd pass settles the codebook again.

The teacher's weights are part of the tokenizer (its architecture is in the config), so a checkpoint
alone rebuilds it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from vq_core import MiniBatchKMeans, StrictConfig, nearest_code
from vq_tokenizers.base import Tokenizer, register_tokenizer
from vq_tokenizers.images import ImageSource, center_crop
from vq_tokenizers.teachers import Teacher, TeacherConfig, build_teacher
from vq_tokenizers.token_space import module_tensors, weights_digest

log = logging.getLogger(__name__)


class ClusterConfig(StrictConfig):
    teacher: TeacherConfig
    codebook_size: int = Field(default=8192, gt=0)
    image_size: int = Field(gt=0, description="input side the tokenizer accepts; the teacher resizes to its own")

    @model_validator(mode="after")
    def _teacher_input(self) -> ClusterConfig:
        if self.image_size < self.teacher.image_size // 4:
            raise ValueError(f"image_size {self.image_size} is far below the teacher's input size {self.teacher.image_size}")
        return self


@register_tokenizer
class ClusterTokenizer(Tokenizer):
    family = "cluster"
    config_class = ClusterConfig
    config: ClusterConfig

    def __init__(self, config: ClusterConfig, *, teacher: Teacher | None = None) -> None:
        """``teacher``: an already loaded teacher matching ``config.teacher`` (built afresh when None)."""
        super().__init__(config)
        if teacher is not None and teacher.config != config.teacher:
            raise ValueError("the teacher given does not match config.teacher")
        self.teacher = teacher if teacher is not None else build_teacher(config.teacher)
        self.register_buffer("codebook", torch.zeros(config.codebook_size, self.teacher.dim))

    def train(self, mode: bool = True) -> ClusterTokenizer:
        """Nothing here trains by gradient; the teacher stays in eval mode."""
        return super().train(False)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def grid(self) -> tuple[int, int]:
        return self.teacher.grid

    @property
    def code_dim(self) -> int:
        return self.teacher.dim

    def token_space_hash(self) -> str:
        return weights_digest(self.config, {**module_tensors("teacher", self.teacher), "codebook": self.codebook})

    @torch.no_grad()
    def load_codebook(self, codebook: torch.Tensor) -> None:
        """Set the centroids (K, D); rows are stored l2-normalised (the search is cosine)."""
        expected = (self.codebook_size, self.code_dim)
        if tuple(codebook.shape) != expected:
            raise ValueError(f"codebook of shape {tuple(codebook.shape)} does not fit this model's {expected}")
        self.codebook.copy_(F.normalize(codebook.float(), dim=1))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> l2-normalised teacher patch features (B, N, D)."""
        self.check_image_size(images)
        return F.normalize(self.teacher.features(images), dim=-1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        b, n, d = features.shape
        indices = nearest_code(features.reshape(b * n, d), self.codebook, metric="cosine")
        return indices.view(b, *self.grid)

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """Indices (B, h, w) -> centroids (B, D, h, w)."""
        return self.codebook[indices].permute(0, 3, 1, 2)


class SourceBatches:
    """Every image of a shard set or folder once, centre-cropped, in fixed order, as (B, 3, S, S) batches.

    Re-iterable (each ``iter`` is a new pass) and finite, which is what k-means passes need; only one
    batch of decoded images is in memory at a time.
    """

    def __init__(
        self, source: str | os.PathLike[str] | ImageSource, *, image_size: int, batch_size: int, limit: int | None = None
    ) -> None:
        self.source = source if isinstance(source, ImageSource) else ImageSource(source)
        self.image_size = image_size
        self.batch_size = batch_size
        self.limit = limit

    def __len__(self) -> int:
        total = len(self.source) if self.limit is None else min(self.limit, len(self.source))
        return -(-total // self.batch_size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        records = islice(self.source.iter_records(), self.limit)
        while chunk := list(islice(records, self.batch_size)):
            yield torch.stack([center_crop(r.rgb(), self.image_size) for r in chunk])


@dataclass
class FitReport:
    """Statistics of the last pass: mean ``1 - cos`` of features to their code, code usage and perplexity.

    When that pass was a Lloyd pass they describe the codebook *before* its update, so ``inertia`` is an
    upper bound of the final codebook's (no extra pass over the data is spent on measuring).
    """

    features: int
    inertia: float
    usage: float
    perplexity: float
    seconds: float

    def as_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


def _feature_stream(teacher: Teacher, batches: Iterable[torch.Tensor], device: torch.device) -> Iterator[torch.Tensor]:
    """l2-normalised patch features (N, D) of each image batch."""
    for images in batches:
        features = teacher.features(images.to(device))
        yield F.normalize(features.reshape(-1, features.shape[-1]), dim=1)


@torch.no_grad()
def lloyd_pass(codebook: torch.Tensor, features: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """One exact spherical k-means step over streamed features.

    Returns the new codebook (used codes -> normalised mean of their features, unused codes kept), the
    per-code counts and the mean ``1 - cos`` of the features to their *old* nearest code.
    """
    sums = torch.zeros_like(codebook, dtype=torch.float64)
    counts = torch.zeros(codebook.shape[0], dtype=torch.long, device=codebook.device)
    distance, total = 0.0, 0
    for f in features:
        idx, dist = nearest_code(f, codebook, metric="cosine", return_distances=True)
        sums.index_add_(0, idx, f.double())
        counts += torch.bincount(idx, minlength=codebook.shape[0])
        distance += float(dist.sum())
        total += f.shape[0]
    used = counts > 0
    updated = codebook.clone()
    updated[used] = F.normalize(sums[used], dim=1).to(codebook.dtype)
    return updated, counts, distance / max(total, 1)


@torch.no_grad()
def anchor_pass(
    codebook: torch.Tensor, features: Iterable[torch.Tensor], *, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """CVQ-style re-seeding: move each code toward its closest feature by ``exp(-10 K p)`` (``p``: its usage share)."""
    k = codebook.shape[0]
    best = torch.full((k,), -2.0, device=codebook.device)
    anchors = codebook.clone()
    counts = torch.zeros(k, dtype=torch.long, device=codebook.device)
    for f in features:
        for start in range(0, f.shape[0], chunk):
            part = f[start : start + chunk]
            sims = codebook @ part.T  # (K, chunk): one matmul gives both directions
            counts += torch.bincount(sims.argmax(dim=0), minlength=k)  # each feature's code
            sim, where = sims.max(dim=1)  # each code's closest feature
            better = sim > best
            best = torch.where(better, sim, best)
            anchors[better] = part[where[better]]
    share = counts.double() / counts.sum().clamp(min=1)
    alpha = torch.exp(-10.0 * k * share).to(codebook.dtype)[:, None]
    return F.normalize((1 - alpha) * codebook + alpha * anchors, dim=1), counts


def _usage_stats(counts: torch.Tensor) -> tuple[float, float]:
    probs = counts.double() / counts.sum().clamp(min=1)
    nonzero = probs[probs > 0]
    return float((counts > 0).double().mean()), float(torch.exp(-(nonzero * nonzero.log()).sum()))


@torch.no_grad()
def fit_cluster_tokenizer(
    teacher: Teacher,
    image_batches: Iterable[torch.Tensor],
    k: int,
    *,
    image_size: int | None = None,
    epochs: int = 1,
    refine_passes: int = 2,
    anchor_passes: int = 0,
    init_samples: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
) -> tuple[ClusterTokenizer, FitReport]:
    """Fit a k-code Cluster tokenizer on ``teacher``'s features of ``image_batches``.

    ``image_batches`` must be re-iterable and finite (one iteration = one pass over the dataset), e.g.
    :class:`SourceBatches` or a list of (B, 3, S, S) tensors in [-1, 1].  Returns the tokenizer (on
    ``device``) and a :class:`FitReport` of the last pass.
    """
    start = time.perf_counter()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    teacher = teacher.to(device)
    config = ClusterConfig(teacher=teacher.config, codebook_size=k, image_size=image_size or teacher.image_size)
    model = ClusterTokenizer(config, teacher=teacher).to(device)

    def stream() -> Iterator[torch.Tensor]:
        return _feature_stream(teacher, image_batches, device)

    km = MiniBatchKMeans(k, metric="cosine", seed=seed)
    init_samples = init_samples or 3 * k
    for epoch in range(epochs):
        pending: list[torch.Tensor] = []
        for features in stream():
            if km.centroids is None:  # k-means++ needs a sample of at least k points: gather it first
                pending.append(features)
                if sum(p.shape[0] for p in pending) < init_samples:
                    continue
                features, pending = torch.cat(pending), []
            km.partial_fit(features)
        if pending:
            gathered = torch.cat(pending)
            if gathered.shape[0] < k:
                raise ValueError(f"the images yield only {gathered.shape[0]} patch features, fewer than k={k} codes")
            km.partial_fit(gathered)
        log.info("mini-batch k-means epoch %d/%d done", epoch + 1, epochs)
    codebook = F.normalize(km.centroids.to(device, torch.float32), dim=1)

    counts, inertia = None, 0.0
    for _ in range(anchor_passes):
        codebook, _ = anchor_pass(codebook, stream())
        codebook, counts, inertia = lloyd_pass(codebook, stream())
    for _ in range(refine_passes):
        codebook, counts, inertia = lloyd_pass(codebook, stream())
    if counts is None:  # no Lloyd pass ran: measure the mini-batch codebook once
        _, counts, inertia = lloyd_pass(codebook, stream())
    model.load_codebook(codebook)
    usage, perplexity = _usage_stats(counts)
    report = FitReport(
        features=int(counts.sum()), inertia=inertia, usage=usage, perplexity=perplexity, seconds=time.perf_counter() - start
    )
    log.info("cluster fit: %s", report.as_dict())
    return model, report
