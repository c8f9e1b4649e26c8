"""Training VQ-KD: presets, the optimisation config, and the loop that distils a teacher into tokens.

Per step: teacher features of the batch (frozen, fp32, resampled to the student's token grid when the
grids differ), the student's forward (bf16 autocast on CUDA; the codebook's EMA/k-means updates happen
inside the quantizer in train mode), ``loss = (1 - cos) + codebook loss``, AdamW with BEiT v2's
schedule (linear warmup, cosine decay to ``min_lr``; no weight decay on biases, norms, position
embeddings, class tokens or codebook).  Checkpoints hold the weights, optimizer, RNG states and the teacher's
config, so ``resume`` refuses a different teacher; a non-finite loss or gradient stops the run before
the optimizer step and weights are checked before each checkpoint write (the conv trainer's guard and
resume hygiene: truncated newest checkpoint -> the one before, ``metrics.jsonl`` trimmed).  Files in the output directory follow the conv trainer's layout (``step_*.safetensors``,
``tokenizer.safetensors``, ``metrics.jsonl``).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from pydantic import BaseModel, ConfigDict, Field

from vq_core import CheckpointError, StrictConfig, config_hash, trim_metrics
from vq_core.tracking import MetricsLogger, TrackingFields
from vq_core.acceleration import adam, maybe_compile, uses_bf16
from vq_core.checkpoint import nonfinite_tensors
from vq_core.divergence import divergence_error, newest_finite_checkpoint
from vq_core.progress import progress
from vq_tokenizers.base import save_tokenizer
from vq_tokenizers.teachers import Teacher, load_teacher, resample_grid
from vq_tokenizers.training.job import deep_merge, restore_from_session, session_hook, session_rank_world
from vq_tokenizers.training import ImageBatches
from vq_tokenizers.training.checkpoints import (
    FINAL_NAME,
    latest_checkpoint,
    prune_checkpoints,
    step_checkpoint_path,
    step_checkpoints,
)
from vq_tokenizers.training.trainer import (
    NonFiniteLossError,
    default_device,
    distributed_rank_world,
    load_resume_checkpoint,
)
from vq_tokenizers.vqkd import VQKD, VQKDConfig, beit_quantizer, cosine_distance_loss

log = logging.getLogger(__name__)

Hook = Callable[[dict[str, float], Path | None], None]
"""Called after each log step and checkpoint with the metrics and the new checkpoint (or None)."""


class VQKDTrainConfig(TrackingFields):
    """Optimisation of one VQ-KD run (defaults: BEiT v2 at a global batch of 512)."""

    steps: int = Field(default=1000, gt=0)
    batch_size: int = Field(default=64, gt=0, description="images per optimizer step, over all processes")
    lr: float = Field(default=2e-4, gt=0, description="peak learning rate (BEiT v2: 5e-5 per 128 images)")
    min_lr: float = Field(default=1e-5, ge=0)
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float | None = Field(default=None, gt=0)
    log_every: int = Field(default=50, gt=0)
    ckpt_every: int = Field(default=1000, gt=0)
    keep_checkpoints: int = Field(default=3, gt=0)
    seed: int = 0
    device: str | None = None
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="auto: bf16 autocast on CUDA, fp32 on CPU; bf16 forces autocast on CPU too"
    )
    compile: bool = Field(default=False, description="torch.compile the student's forward")
    crop_scale: tuple[float, float] = Field(
        default=(0.64, 1.0),
        description="RandomResizedCrop area range of the training images (the seed's and BEiT v2's VQ-KD: (0.08, 1), "
        "torchvision's default, on the original images)",
    )

    def lr_at(self, step: int) -> float:
        """Linear warmup to ``lr``, then half a cosine down to ``min_lr`` at ``steps``."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        progress = (step - self.warmup_steps) / max(self.steps - self.warmup_steps, 1)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


class VQKDPreset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str
    model: dict[str, Any]
    train: VQKDTrainConfig
    teacher: str = Field(description="the teacher the published setup distils (a spec kind)")
    description: str


SEED_VQKD_TRAIN = VQKDTrainConfig(
    steps=250_000, batch_size=512, lr=2e-4, min_lr=1e-5, warmup_steps=25_000, weight_decay=1e-4, betas=(0.9, 0.99),
    ckpt_every=10_000, crop_scale=(0.08, 1.0),
)
"""The seed's ``configs/vqkd/runner.py`` + ``interface.py``: AdamW lr 2e-4, wd 1e-4, betas (0.9, 0.99), eps 1e-8,
linear warmup over 25k then cosine to 1e-5 at 250k iterations, batch 512 in total, RandomResizedCrop(224)
with torchvision's default scale (0.08, 1) + flip ('default' augmentation), checkpoints every 10k."""


def _seed_vqkd(teacher: str, target_dim: int, codebook_size: int = 8192) -> dict[str, Any]:
    """The seed's ``configs/vqkd/model.py``: ViT-B/16 encoder at 224, 32-d cosine codes, 1-block decoder."""
    return {
        "encoder": {"image_size": 224, "patch_size": 16, "dim": 768, "depth": 12, "heads": 12},
        "decoder": {"image_size": 14, "patch_size": 1, "in_channels": 32, "dim": 768, "depth": 1, "heads": 12},
        "quantizer": beit_quantizer(codebook_size, 32),
        "target_dim": target_dim,
    }


# (preset, teacher spec kind, target width, codebook, seed config, teacher as the seed names it)
SEED_VQKD_ROWS = (
    ("vqkd_clip_8192", "clip-proj", 512, 8192, "clip_8192_imagenet_ddp.py", "OpenAI CLIP ViT-B/16 after ln_post + proj"),
    ("vqkd_dino_8192", "dino", 768, 8192, "dino_8192_imagenet_ddp.py", "DINO ViT-B/16"),
    ("vqkd_mae_8192", "mae", 768, 8192, "mae_8192_imagenet_ddp.py", "MAE ViT-B/16 (mae_pretrain_vit_base)"),
    ("vqkd_vit_8192", "tv-vit_b_16", 768, 8192, "vit_8192_imagenet_ddp.py", "torchvision vit_b_16 IMAGENET1K_V1"),
    ("vqkd_vit_16384", "tv-vit_b_16", 768, 16384, "vit_16384_imagenet_ddp.py", "torchvision vit_b_16 IMAGENET1K_V1"),
    ("vqkd_convnext_8192", "tv-convnext_base", 1024, 8192, "convnext_8192_imagenet_ddp.py", "torchvision convnext_base IMAGENET1K_V1, 7x7 map"),
    ("vqkd_evaclip_8192", "evaclip", 768, 8192, "evaclip_8192_imagenet_ddp.py", "EVA02-CLIP-B-16 (open_clip EVA02-B-16, e.g. evaclip:EVA02-B-16:merged2b_s8b_b131k)"),
    ("vqkd_openclip_L_14_8192", "openclip", 768, 8192, "openclip_L_14_8192_imagenet_ddp.py", "OpenCLIP ViT-L-14 laion2B_s32B_b82k (openclip:ViT-L-14:laion2b_s32b_b82k)"),
    ("vqkd_openclip_bigG_14_8192", "openclip", 1280, 8192, "openclip_bigG_14_8192_imagenet_ddp.py", "OpenCLIP ViT-bigG-14 laion2b_s39b_b160k (openclip:ViT-bigG-14:laion2b_s39b_b160k)"),
)

VQKD_PRESETS: dict[str, VQKDPreset] = {
    p.name: p
    for p in (
        *(
            VQKDPreset(
                name=name, model=_seed_vqkd(teacher, dim, k), train=SEED_VQKD_TRAIN, teacher=teacher,
                description=f"seed configs/vqkd/{config}: ViT-B/16 at 224, {k} x 32 cosine codes, 1-block decoder, "
                f"{label} ({dim}-d targets on a 14x14 grid)",
            )
            for name, teacher, dim, k, config, label in SEED_VQKD_ROWS
        ),
        VQKDPreset(
            name="tiny",
            model={
                "encoder": {"image_size": 32, "patch_size": 8, "dim": 64, "depth": 2, "heads": 4},
                "decoder": {"image_size": 4, "patch_size": 1, "in_channels": 32, "dim": 64, "depth": 1, "heads": 4},
                "quantizer": beit_quantizer(256, 32),
                "target_dim": 32,
            },
            train=VQKDTrainConfig(steps=200, batch_size=16, lr=1e-3, min_lr=1e-4, warmup_steps=10, log_every=20, ckpt_every=100),
            teacher="random-clip",
            description="CPU-sized VQ-KD: 32 px, patch 8 (4x4 tokens), 2 blocks of width 64, 256 x 32 cosine codes",
        ),
    )
}


def vqkd_config_for(preset: str, teacher: Teacher, overrides: dict[str, Any] | None = None) -> VQKDConfig:
    """A preset's model config with ``target_dim`` set to the teacher's width (and any overrides applied)."""
    if preset not in VQKD_PRESETS:
        raise KeyError(f"no VQ-KD preset {preset!r}; known: {sorted(VQKD_PRESETS)}")
    data = deep_merge(dict(VQKD_PRESETS[preset].model), {"target_dim": teacher.dim})
    data = deep_merge(data, overrides or {})
    config = VQKDConfig.from_dict(data, source=f"vqkd preset {preset} + overrides")
    if config.target_dim != teacher.dim:
        raise ValueError(f"target_dim {config.target_dim} does not match the teacher's feature width {teacher.dim}")
    return config


class VQKDTrainer:
    """Distil ``teacher`` into ``model``'s tokens, writing checkpoints into ``checkpoint_dir``.

    ``data`` yields image batches (B, 3, S, S) in [-1, 1]; an object with ``iter_from(batch_index)``
    (such as ``training.ImageBatches``) restarts at the right batch on resume.  When
    ``torch.distributed`` is initialised the student runs under DDP (each rank feeds its own shard of
    the data; the quantizer all-reduces its EMA statistics and broadcasts its k-means init itself) and
    only rank 0 writes files.
    """

    def __init__(
        self,
        model: VQKD,
        teacher: Teacher,
        data: Iterable[torch.Tensor],
        config: VQKDTrainConfig,
        checkpoint_dir: str | Path,
        *,
        hooks: Sequence[Hook] = (),
        device: str | torch.device | None = None,
    ) -> None:
        if teacher.dim != model.config.target_dim:
            raise ValueError(
                f"teacher {teacher.config.source or teacher.kind} gives {teacher.dim}-d features but the model predicts "
                f"target_dim {model.config.target_dim}; build the config with vqkd_config_for(preset, teacher)"
            )
        self.config = config
        self.checkpoint_dir = Path(checkpoint_dir)
        self.rank, self.world_size = distributed_rank_world()
        self.is_main = self.rank == 0
        self.metrics_log = MetricsLogger(self.checkpoint_dir, config, enabled=self.is_main, run_config=config.model_dump(mode="json"))
        self.device = torch.device(device or config.device or default_device(int(os.environ.get("LOCAL_RANK", 0))))
        self.hooks = list(hooks)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)
        self.model = model.to(self.device).train()
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network: torch.nn.Module = DistributedDataParallel(self.model, device_ids=ids)
        else:
            self.network = self.model
        self.network = maybe_compile(self.network, config.compile)  # shares the parameters of self.model
        self.teacher = teacher.to(self.device)
        self.data = data
        self.step = 0
        decay, no_decay = [], []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            plain = param.ndim <= 1 or name.endswith(("pos_embed", "cls_token")) or name.startswith("quantizer.")
            (no_decay if plain else decay).append(param)
        self.optimizer = adam(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            device=self.device,
            decoupled=True,
            lr=config.lr,
            betas=config.betas,
        )
        self.autocast = uses_bf16(config.precision, self.device)
        self._sums: dict[str, torch.Tensor] = {}
        self._count = 0
        self._usage = torch.zeros(model.codebook_size, dtype=torch.long, device=self.device)

    # --- checkpoints ----------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "train_config": self.config.model_dump(mode="json"),
            "teacher": self.teacher.config.model_dump(mode="json"),
            "teacher_hash": config_hash(self.teacher.config),
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
        }

    def save_checkpoint(self) -> Path | None:
        self._check_weights()
        if not self.is_main:
            return None
        path = step_checkpoint_path(self.checkpoint_dir, self.step)
        save_tokenizer(self.model, path, step=self.step, state=self._state())
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        return path

    def export(self) -> Path | None:
        """The tokenizer alone (with the teacher's config for provenance) as ``tokenizer.safetensors`` (rank 0)."""
        self._check_weights()
        if not self.is_main:
            return None
        state = {"teacher": self.teacher.config.model_dump(mode="json")}
        return save_tokenizer(self.model, self.checkpoint_dir / FINAL_NAME, step=self.step, state=state)

    def resume(self, path: str | Path | None = None) -> bool:
        """Continue from the latest (or the given) step checkpoint; False when there is none.

        Without ``path`` an unreadable newest checkpoint falls back to the one before it (warning)."""
        found = load_resume_checkpoint(self.checkpoint_dir, path, self.model.family, self.device)
        if found is None:
            return False
        path, ckpt = found
        if ckpt.config_hash != self.model.config.config_hash():
            raise CheckpointError(
                f"checkpoint {path} was trained with another vqkd config; resume with the same preset/overrides"
            )
        if ckpt.state.get("teacher_hash") != config_hash(self.teacher.config):
            raise CheckpointError(
                f"checkpoint {path} was distilled from teacher {ckpt.state.get('teacher', {}).get('source')!r}, not "
                f"{self.teacher.config.source!r} (configs differ); resume with the same --teacher"
            )
        self.model.load_state_dict(ckpt.model)
        self.optimizer.load_state_dict(ckpt.state["optimizer"])
        rng = ckpt.state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        self.step = ckpt.step
        if self.is_main:
            trim_metrics(self.checkpoint_dir / "metrics.jsonl", self.step)
        log.info("resumed %s at step %d", path, self.step)
        return True

    # --- the loop ---------------------------------------------------------------------------------
    def _batches(self) -> Iterator[torch.Tensor]:
        if hasattr(self.data, "iter_from"):
            return iter(self.data.iter_from(self.step))
        iterator = iter(self.data)
        for _ in range(self.step):
            next(iterator)
        return iterator

    def train_step(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """One optimizer step on one batch; returns its loss terms (detached, on the device: no host sync)."""
        images = images.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            features = self.teacher.features(images)
        target = resample_grid(features, self.teacher.grid, self.model.grid)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.network(images)
        rec = cosine_distance_loss(out.prediction, target)
        loss = rec + out.quant_loss.float()
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr_at(self.step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.config.grad_clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        else:
            grad_norm = torch.nn.utils.get_total_norm([p.grad for p in params]).to(self.device)
        # one host sync per step, before the optimizer touches the weights; all ranks stop together
        flags = torch.stack([(~torch.isfinite(loss.detach())).float(), (~torch.isfinite(grad_norm)).float()])
        if self.world_size > 1:
            dist.all_reduce(flags)
        loss_bad, grad_bad = flags.tolist()
        if loss_bad:
            raise self._diverged(f"VQ-KD loss is not finite on some rank (here rec={rec.item():.4g}, quant={out.quant_loss.item():.4g})")
        if grad_bad:
            raise self._diverged(f"VQ-KD gradient norm is not finite ({float(grad_norm):.4g}) on some rank")
        self.optimizer.step()
        self._usage += torch.bincount(out.indices.flatten(), minlength=self.model.codebook_size)
        return {"loss": loss.detach(), "rec": rec.detach(), "quant": out.quant_loss.detach().float()}

    def _check_weights(self) -> None:
        """Refuse to write checkpoints of weights that hold NaN/inf (every rank checks: all stop together)."""
        bad = nonfinite_tensors(self.model.state_dict())
        if bad:
            raise self._diverged(f"weights {bad[:3]} are not finite after the update", stopped="before writing them")

    def _diverged(self, what: str, stopped: str = "before updating the weights") -> NonFiniteLossError:
        newest = newest_finite_checkpoint(
            (p for _, p in reversed(step_checkpoints(self.checkpoint_dir))), family=self.model.family
        )
        fix = "lower --lr, set grad_clip or check the input data"
        return NonFiniteLossError(str(divergence_error(self.step, what, newest, fix, stopped=stopped)))

    def _log(self, seconds_per_step: float) -> dict[str, float]:
        """Loss terms averaged over steps (and ranks), code usage of all ranks; rank 0 appends them to metrics.jsonl."""
        keys = sorted(self._sums)
        sums = torch.stack([self._sums[k].double() for k in keys]) if keys else torch.zeros(0, dtype=torch.float64)
        sums, usage = sums.to(self.device), self._usage.clone()
        if self.world_size > 1:
            dist.all_reduce(sums)
            dist.all_reduce(usage)
        metrics = {"step": float(self.step)}
        metrics.update({k: float(v) / (max(self._count, 1) * self.world_size) for k, v in zip(keys, sums.tolist(), strict=True)})
        usage = usage.double()
        probs = usage[usage > 0] / usage.sum().clamp(min=1)
        metrics["codebook_usage"] = float((usage > 0).double().mean())
        metrics["perplexity"] = float(torch.exp(-(probs * probs.log()).sum()))
        metrics["lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["seconds_per_step"] = seconds_per_step
        self._sums, self._count = {}, 0
        self._usage.zero_()
        if self.is_main:
            log.info("step %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step"))
            self.metrics_log.log(metrics)  # metrics.jsonl + TensorBoard (+ W&B)
        return metrics

    def train(self) -> dict[str, float]:
        """Run to ``config.steps``; returns the last logged metrics and writes ``tokenizer.safetensors``."""
        if self.step == 0 and latest_checkpoint(self.checkpoint_dir) is not None:
            raise FileExistsError(f"{self.checkpoint_dir} already holds checkpoints; resume them or choose another output")
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            trim_metrics(self.checkpoint_dir / "metrics.jsonl", self.step)
        batches = self._batches()
        last: dict[str, float] = {}
        start, start_step = time.perf_counter(), self.step
        bar = progress(total=self.config.steps, initial=self.step, desc="train vqkd", unit="step", enabled=None if self.is_main else False)
        while self.step < self.config.steps:
            logs = self.train_step(next(batches))
            for key, value in logs.items():
                self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._count += 1
            self.step += 1
            bar.update(1)
            final = self.step == self.config.steps
            logged = self.step % self.config.log_every == 0 or final
            if logged:
                last = self._log((time.perf_counter() - start) / (self.step - start_step))
                start, start_step = time.perf_counter(), self.step
            checkpoint = self.save_checkpoint() if self.step % self.config.ckpt_every == 0 or final else None
            if logged or checkpoint is not None:
                for hook in self.hooks:
                    hook(last if logged else {"step": float(self.step)}, checkpoint)
        bar.close()
        self.export()
        return last


class VQKDJob(StrictConfig):
    """What ``vq-tok train-vqkd`` runs (and what ``vq_core.launch`` passes to :func:`train_vqkd`)."""

    teacher: str = Field(description="teacher spec, e.g. clip-proj:/models/clip-vit-base-patch16 or random-clip:tiny")
    teacher_layer: int | None = Field(default=None, description="hidden state to distil (None: final output)")
    teacher_size: int | None = Field(default=None, description="teacher input size (None: its own)")
    preset: str = "tiny"
    model: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's model config")
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's train config")
    data: str = Field(description="image shard set, image folder, list file, ImageNet root or 'bundled'")
    out: str = Field(description="run directory (step checkpoints, metrics.jsonl, tokenizer.safetensors)")
    resume: bool = False


def train_vqkd(config: dict[str, Any] | VQKDJob, session: Any = None) -> dict[str, float]:
    """Train a VQ-KD tokenizer from a preset; the ``fn(config, session)`` loop of ``vq_core.launch``.

    Loads the teacher from ``config.teacher`` (local files only), distils it into a fresh VQ-KD on the
    images in ``config.data`` and writes checkpoints, ``metrics.jsonl`` and ``tokenizer.safetensors`` into
    ``config.out``.  With a session (Ray Train): its device, Ray's restore directory on a restarted
    worker, and metrics + each new checkpoint (in a directory of its own) through ``session.report``.
    Several processes (torchrun, or Ray workers) train data-parallel with ``batch_size`` split over
    them.  Returns the last logged metrics.
    """
    job = config if isinstance(config, VQKDJob) else VQKDJob.from_dict(config, source="vqkd job")
    rank, world = session_rank_world(session)
    if job.preset not in VQKD_PRESETS:
        raise KeyError(f"no VQ-KD preset {job.preset!r}; known: {sorted(VQKD_PRESETS)}")
    teacher = load_teacher(job.teacher, layer=job.teacher_layer, image_size=job.teacher_size)
    train_config = VQKDTrainConfig.from_dict(
        deep_merge(VQKD_PRESETS[job.preset].train.model_dump(), job.train), source=f"vqkd preset {job.preset} train"
    )
    torch.manual_seed(train_config.seed)  # the initial weights are part of the run's seeded state
    model = VQKD(vqkd_config_for(job.preset, teacher, job.model))
    out = Path(job.out)
    restored = restore_from_session(session, out)
    if train_config.batch_size % world:
        raise ValueError(f"--batch-size {train_config.batch_size} is not divisible by the {world} processes (--num-workers); pick a multiple")
    batches = ImageBatches(
        job.data, image_size=model.image_size, batch_size=train_config.batch_size // world, seed=train_config.seed,
        rank=rank, world_size=world, scale=train_config.crop_scale,
    )
    hooks = [session_hook(session)] if session is not None else []
    device = session.device if session is not None and train_config.device is None else None
    trainer = VQKDTrainer(model, teacher, batches, train_config, out, hooks=hooks, device=device)
    if job.resume or restored:
        trainer.resume()
    return trainer.train()
