"""Cluster tokenizer: a frozen teacher plus a codebook of k-means centroids of its patch features.

``encode`` = teacher patch features -> index of the most cosine-similar centroid, on the teacher's grid.
There is no trained encoder at all, so fitting is fast and its memory is bounded by one batch of
features plus a few (K, D) matrices, whatever the dataset size.  Every step streams over the data:

1. **seed sample**: a uniform random sample of ``init_samples`` features of the whole dataset (each
   feature gets a seeded random key, the smallest keys are kept), k-means++ seeds on it.  Seeding on
   the first batches instead would see only the first images of a source read in a fixed order (one
   class, one photo) and leave the codebook in a poor local optimum;
2. **mini-batch k-means** (vq-core ``MiniBatchKMeans``, cosine) for ``epochs`` passes;
3. optional **anchor passes** (CVQ-VAE style): during a pass every code remembers its closest feature
   (its anchor) and the features worst served by the codebook are collected; afterwards each code
   moves toward its anchor by ``alpha = exp(-10 K p)``, where ``p`` is the share of features it won -
   rarely used codes jump onto their anchor, well-used codes stay - and each code nobody chose takes
   one of the worst-served features instead (its nearest feature may be one another code already
   wins, e.g. for a duplicate code, so it would stay dead); a Lloyd pass settles the codebook again;
4. **exact Lloyd passes**: each pass accumulates per-code sums and counts over the whole dataset, then
   moves every used code to the normalised mean of its features - the same update as in-memory
   k-means, without holding the features.

The teacher's weights are part of the tokenizer (its architecture is in the config), so a checkpoint
alone rebuilds it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from vq_core import MiniBatchKMeans, StrictConfig, atomic_write_text, nearest_code
from vq_tokenizers.base import Tokenizer, register_tokenizer, save_tokenizer
from vq_tokenizers.images import ImageSource, center_crop
from vq_tokenizers.teachers import Teacher, TeacherConfig, build_teacher, load_teacher
from vq_tokenizers.token_space import module_tensors
from vq_tokenizers.training.checkpoints import FINAL_NAME

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

    @property
    def size_multiple(self) -> int:
        """Input side ``S`` runs the teacher at ``S * teacher.image_size / image_size``, which must be a whole
        multiple of the teacher's stride: with equal sizes, any multiple of the patch size (the seed
        tokenizes at 256 px, 16x16, with teachers made for 224)."""
        unit = self.config.image_size * self.teacher.stride
        return unit // math.gcd(self.teacher.image_size, unit)

    def teacher_size(self, image_size: int) -> int:
        """The teacher's input side for tokenizer inputs of side ``image_size``."""
        return image_size * self.teacher.image_size // self.config.image_size

    def grid_for(self, height: int, width: int | None = None) -> tuple[int, int]:
        width = height if width is None else width
        super().grid_for(height, width)
        if height != width:
            raise ValueError(f"cluster: the teacher takes square images, got {height}x{width}")
        return self.teacher.grid_at(self.teacher_size(height))

    def token_space_tensors(self) -> dict[str, torch.Tensor]:
        """The frozen teacher and the centroids: together they decide every token."""
        return {**module_tensors("teacher", self.teacher), "codebook": self.codebook}

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
        return F.normalize(self.teacher.features(images, self.teacher_size(images.shape[-1])), dim=-1)

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        features = self.features(images)
        b, n, d = features.shape
        indices = nearest_code(features.reshape(b * n, d), self.codebook, metric="cosine")
        return indices.view(b, *self.grid_for(images.shape[-2], images.shape[-1]))

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
def uniform_sample(features: Iterable[torch.Tensor], size: int, *, seed: int = 0) -> torch.Tensor:
    """A uniform random sample (without replacement) of ``size`` rows of the streamed ``features``.

    Each row gets a random key from a seeded generator and the ``size`` smallest keys survive, so memory
    is ``size`` rows plus one chunk and the sample does not depend on how the stream is chunked.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    keys: torch.Tensor | None = None
    kept: torch.Tensor | None = None
    for f in features:
        chunk_keys = torch.rand(f.shape[0], generator=generator).to(f.device)
        keys = chunk_keys if keys is None else torch.cat([keys, chunk_keys])
        kept = f if kept is None else torch.cat([kept, f])
        if keys.shape[0] > size:
            keys, order = keys.topk(size, largest=False, sorted=False)
            kept = kept[order]
    if kept is None:
        raise ValueError("the image source is empty")
    return kept


@torch.no_grad()
def anchor_pass(
    codebook: torch.Tensor, features: Iterable[torch.Tensor], *, chunk: int = 4096
) -> tuple[torch.Tensor, torch.Tensor]:
    """CVQ-style re-seeding: move each code toward its closest feature by ``exp(-10 K p)`` (``p``: its usage
    share); codes no feature chose take the worst-served features instead (distinct ones, worst first).

    Returns the new (unit) codebook and the per-code counts of the pass (before the move).
    """
    k = codebook.shape[0]
    best = torch.full((k,), -2.0, device=codebook.device)
    anchors = codebook.clone()
    counts = torch.zeros(k, dtype=torch.long, device=codebook.device)
    worst_sim = codebook.new_empty(0)
    worst = codebook.new_empty(0, codebook.shape[1])
    for f in features:
        for start in range(0, f.shape[0], chunk):
            part = f[start : start + chunk]
            sims = codebook @ part.T  # (K, chunk): one matmul gives both directions
            served, code = sims.max(dim=0)  # each feature's code and its similarity
            counts += torch.bincount(code, minlength=k)
            sim, where = sims.max(dim=1)  # each code's closest feature
            better = sim > best
            best = torch.where(better, sim, best)
            anchors[better] = part[where[better]]
            worst_sim = torch.cat([worst_sim, served])  # keep the k least served features so far
            worst = torch.cat([worst, part])
            if worst_sim.shape[0] > k:
                worst_sim, order = worst_sim.topk(k, largest=False)
                worst = worst[order]
    share = counts.double() / counts.sum().clamp(min=1)
    alpha = torch.exp(-10.0 * k * share).to(codebook.dtype)[:, None]
    moved = (1 - alpha) * codebook + alpha * anchors
    dead = (counts == 0).nonzero().flatten()
    order = worst_sim.argsort()  # worst served first
    replace = dead[: order.numel()]
    moved[replace] = worst[order[: replace.numel()]]
    return F.normalize(moved, dim=1), counts


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
    :class:`SourceBatches` or a list of (B, 3, S, S) tensors in [-1, 1].  ``init_samples`` (default
    ``3 k``) features, sampled uniformly from the whole stream, seed k-means++.  Returns the tokenizer
    (on ``device``) and a :class:`FitReport` of the last pass.
    """
    start = time.perf_counter()
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    teacher = teacher.to(device)
    config = ClusterConfig(teacher=teacher.config, codebook_size=k, image_size=image_size or teacher.image_size)
    model = ClusterTokenizer(config, teacher=teacher).to(device)

    def stream() -> Iterator[torch.Tensor]:
        return _feature_stream(teacher, image_batches, device)

    init_samples = max(init_samples or 3 * k, k)
    sample = uniform_sample(stream(), init_samples, seed=seed)
    if sample.shape[0] < k:
        raise ValueError(f"the images yield only {sample.shape[0]} patch features, fewer than k={k} codes")
    km = MiniBatchKMeans(k, metric="cosine", seed=seed)
    km.partial_fit(sample)  # k-means++ seeding on a sample of the whole dataset
    for epoch in range(epochs):
        for features in stream():
            km.partial_fit(features)
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


class ClusterJob(StrictConfig):
    """What ``vq-tok fit-cluster`` runs (and what ``vq_core.launch`` passes to :func:`fit_cluster`)."""

    teacher: str = Field(description="teacher spec, e.g. dinov2:/models/dinov2-base or random-clip:tiny")
    teacher_layer: int | None = Field(default=None, description="hidden state to cluster (None: final output)")
    teacher_size: int | None = Field(default=None, description="teacher input size (None: its own)")
    k: int = Field(default=8192, gt=0, description="codebook size")
    data: str = Field(description="image shard set, image folder, list file, ImageNet root or 'bundled'")
    out: str = Field(description="run directory: tokenizer.safetensors and fit.json are written there")
    image_size: int | None = Field(default=None, gt=0, description="tokenizer input size (None: the teacher's)")
    batch_size: int = Field(default=64, gt=0, description="images per feature batch")
    max_images: int | None = Field(default=None, gt=0, description="use at most this many images (in source order)")
    epochs: int = Field(default=1, ge=0, description="mini-batch k-means passes")
    refine_passes: int = Field(default=2, ge=0, description="exact streamed Lloyd passes")
    anchor_passes: int = Field(default=0, ge=0, description="CVQ-style re-seeding passes (each followed by a Lloyd pass)")
    init_samples: int | None = Field(default=None, gt=0, description="seed sample size (None: 3 k)")
    seed: int = 0
    device: str | None = None
    method: Literal["kmeans", "sgd"] = Field(
        default="kmeans",
        description="kmeans: streamed k-means (fast, one process); sgd: the seed's Adam + CVQ nearest-anchor fit "
        "(cluster_sgd.py; DDP / Ray workers), where batch_size is the global batch",
    )
    steps: int = Field(default=100_000, gt=0, description="sgd: iterations (the seed: 100k)")
    lr: float = Field(default=5.4e-5, gt=0, description="sgd: Adam learning rate (the seed's runner.py)")
    betas: tuple[float, float] = Field(default=(0.5, 0.9), description="sgd: Adam betas")
    usage_decay: float = Field(default=0.99, gt=0, lt=1, description="sgd: decay of the CVQ code-usage EMA")
    crop_scale: tuple[float, float] = Field(
        default=(0.8, 1.0), description="sgd: RandomResizedCrop area range + flip (the seed's 'strong' augmentation)"
    )


def fit_cluster(config: dict[str, Any] | ClusterJob, session: Any = None) -> dict[str, float]:
    """Fit a Cluster tokenizer; the ``fn(config, session)`` loop of ``vq_core.launch``.

    Writes ``out/tokenizer.safetensors`` (teacher weights + centroids; ``load_tokenizer`` rebuilds it) and
    ``out/fit.json`` (the :class:`FitReport`).  The k-means fit is one process: with a session it runs on the
    session's device and reports the fit report with the run directory as the checkpoint; ``method='sgd'``
    (:mod:`vq_tokenizers.cluster_sgd`) runs on every rank of a DDP / Ray session.
    """
    job = config if isinstance(config, ClusterJob) else ClusterJob.from_dict(config, source="cluster job")
    if job.method == "sgd":
        return _fit_cluster_sgd(job, session)
    if session is not None and session.world_size > 1:
        raise ValueError(
            f"Cluster fitting runs in one process; launch it with --num-workers 1, not {session.world_size} "
            f"(or --method sgd, which runs on every worker)"
        )
    teacher = load_teacher(job.teacher, layer=job.teacher_layer, image_size=job.teacher_size)
    size = job.image_size or teacher.image_size
    batches = SourceBatches(job.data, image_size=size, batch_size=job.batch_size, limit=job.max_images)
    device = job.device or (session.device if session is not None else None)
    model, report = fit_cluster_tokenizer(
        teacher, batches, job.k, image_size=size, epochs=job.epochs, refine_passes=job.refine_passes,
        anchor_passes=job.anchor_passes, init_samples=job.init_samples, seed=job.seed, device=device,
    )
    out = Path(job.out)
    out.mkdir(parents=True, exist_ok=True)
    save_tokenizer(model.cpu(), out / FINAL_NAME, state={"fit": report.as_dict(), "job": job.model_dump(mode="json")})
    atomic_write_text(out / "fit.json", json.dumps(report.as_dict(), indent=2) + "\n")
    metrics = report.as_dict()
    if session is not None:  # the run directory is the checkpoint: Ray copies it to the run's storage
        session.report(metrics, out)
    return metrics


def _fit_cluster_sgd(job: ClusterJob, session: Any) -> dict[str, float]:
    """``fit_cluster`` with ``method='sgd'``: every rank streams its share of the batch; rank 0 writes the files."""
    from vq_tokenizers.cluster_sgd import fit_codebook_sgd
    from vq_tokenizers.training.data import ImageBatches

    start = time.perf_counter()
    rank, world = (session.rank, session.world_size) if session is not None else (0, 1)
    if job.batch_size % world:
        raise ValueError(f"--batch-size {job.batch_size} is not divisible by the {world} processes (sgd: the global batch)")
    device = torch.device(job.device or (session.device if session is not None else ("cuda" if torch.cuda.is_available() else "cpu")))
    teacher = load_teacher(job.teacher, layer=job.teacher_layer, image_size=job.teacher_size).to(device)
    size = job.image_size or teacher.image_size
    batches = ImageBatches(
        job.data, image_size=size, batch_size=job.batch_size // world, seed=job.seed, rank=rank, world_size=world,
        scale=job.crop_scale,
    )
    codebook, sgd = fit_codebook_sgd(
        teacher, batches.iter_from(0), job.k, steps=job.steps, lr=job.lr, betas=job.betas, decay=job.usage_decay,
        seed=job.seed, device=device,
    )
    model = ClusterTokenizer(ClusterConfig(teacher=teacher.config, codebook_size=job.k, image_size=size), teacher=teacher)
    model.load_codebook(codebook)
    report = FitReport(features=sgd.features, inertia=sgd.inertia, usage=sgd.usage, perplexity=sgd.perplexity,
                       seconds=time.perf_counter() - start)
    metrics = {**report.as_dict(), "loss": sgd.loss, "steps": float(sgd.steps)}
    out = Path(job.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        save_tokenizer(model.cpu(), out / FINAL_NAME, state={"fit": metrics, "job": job.model_dump(mode="json")})
        atomic_write_text(out / "fit.json", json.dumps(metrics, indent=2) + "\n")
    if session is not None:
        session.report(metrics, out if rank == 0 else None)
    return metrics
