"""A whole training run described by one config: preset + overrides + data + output directory.

:func:`train_tokenizer` has the ``fn(config: dict, session)`` shape of ``vq_core.launch``: it runs
in-process (``session=None``: rank/world from ``torch.distributed``, joining torchrun's process group
when ``WORLD_SIZE`` > 1) or as a Ray Train worker, whose session supplies rank, device, a restore
directory and ``report``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from pydantic import Field

from vq_core import MANIFEST_NAME, StrictConfig, copy_checkpoint_files
from vq_data import image_loader
from vq_tokenizers.autoencoder import ConvVQTokenizer
from vq_tokenizers.base import build_tokenizer, tokenizer_class
from vq_tokenizers.losses import LossConfig
from vq_tokenizers.presets import get_preset
from vq_tokenizers.training import ImageBatches, TrainConfig, Trainer
from vq_tokenizers.training.trainer import distributed_rank_world


class ImageTrainJob(StrictConfig):
    """Fields every pixel-space training job shares (tokenizers and pixel decoders): preset overrides,
    the image data, and where the run lives."""

    preset: str = "tiny"
    loss: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's loss config")
    train: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's train config")
    data: str = Field(description="image shard set, or a vq-data source (image folder, list file, ImageNet root, bundled)")
    num_workers: int = Field(default=0, ge=0, description="decoding worker processes (image shard sets)")
    out: str = Field(description="checkpoint directory (checkpoints, samples/, metrics.jsonl, tokenizer.safetensors)")
    resume: bool = False


class TrainJob(ImageTrainJob):
    """What ``vq-tok train`` runs."""

    family: str | None = Field(default=None, description="needed where the preset name exists for several families")
    model: dict[str, Any] = Field(default_factory=dict, description="overrides of the preset's model config")
    init_from: str | None = Field(default=None, description="start from these weights (e.g. a converted checkpoint)")


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied; nested dicts merge key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def build_run(job: TrainJob) -> tuple[ConvVQTokenizer, LossConfig, TrainConfig]:
    """The model, loss and schedule a job describes (preset values overridden by the job's)."""
    preset = get_preset(job.preset, job.family)
    cls = tokenizer_class(preset.family)
    model_config = cls.config_class.from_dict(deep_merge(preset.model, job.model), source=f"preset {preset.name} + overrides")
    loss = LossConfig.from_dict(deep_merge(preset.loss.model_dump(), job.loss), source=f"preset {preset.name} loss")
    train = TrainConfig.from_dict(deep_merge(preset.train.model_dump(), job.train), source=f"preset {preset.name} train")
    torch.manual_seed(train.seed)  # the initial weights are part of the run's seeded state
    model = build_tokenizer(preset.family, model_config)
    assert isinstance(model, ConvVQTokenizer)
    return model, loss, train


def train_tokenizer(config: dict[str, Any] | TrainJob, session: Any = None) -> dict[str, float]:
    """Build and run one training job; returns the last logged metrics."""
    job = config if isinstance(config, TrainJob) else TrainJob.from_dict(config, source="train job")
    rank, world = session_rank_world(session)
    model, loss, train = build_run(job)
    trainer, restored = image_trainer(model, job, train, loss, session, rank, world)
    resumed = trainer.resume() if job.resume or restored else False
    if job.init_from and not resumed:
        trainer.load_weights(job.init_from)
    return trainer.train()


def session_rank_world(session: Any) -> tuple[int, int]:
    """Rank and world size from a launch session, else from torch.distributed (joined from torchrun's env)."""
    if session is None:
        init_distributed_from_env()
        return distributed_rank_world()
    return session.rank, session.world_size


def image_trainer(
    model: Any, job: ImageTrainJob, train: TrainConfig, loss: LossConfig, session: Any, rank: int, world: int
) -> tuple[Trainer, bool]:
    """The :class:`Trainer` of a pixel-space job on this rank's share of ``job.data``, reporting to
    ``session``; and whether a restarted Ray worker got a checkpoint back (then resume from it)."""
    out = Path(job.out)
    restored = restore_from_session(session, out)
    data = training_batches(job.data, job.num_workers, model.image_size, train, rank, world)
    hooks = [session_hook(session)] if session is not None else []
    device = session.device if session is not None and train.device is None else None
    return Trainer(model, data, train, out, loss=loss, hooks=hooks, device=device), restored


def restore_from_session(session: Any, out: Path) -> bool:
    """Copy the checkpoint a restarted Ray worker gets back into ``out``; True when there was one."""
    if session is None or not hasattr(session, "restore_dir"):
        return False
    with session.restore_dir() as directory:
        if directory is None:
            return False
        copy_checkpoint_files(Path(directory), out)
    return True


def training_batches(data: str, num_workers: int, image_size: int, train: TrainConfig, rank: int, world: int) -> Any:
    """vq-data's resumable worker loader for shard sets; :class:`ImageBatches` for every other source."""
    micro = train.micro_batch_size(world)
    if (Path(data) / MANIFEST_NAME).is_file():
        return image_loader(
            data, micro, image_size, train=True, seed=train.seed, rank=rank, world_size=world, num_workers=num_workers
        )
    return ImageBatches(data, image_size=image_size, batch_size=micro, seed=train.seed, rank=rank, world_size=world)


def init_distributed_from_env() -> None:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), unless one exists already."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def session_hook(session: Any) -> Callable[[dict[str, float], Path | None], None]:
    """Forward reports to a launch session; a new checkpoint goes in a directory of its own (Ray uploads directories)."""

    def report(metrics: dict[str, float], checkpoint: Path | None) -> None:
        if checkpoint is None:
            session.report(metrics, None)
            return
        with tempfile.TemporaryDirectory(prefix="vq-ckpt-") as tmp:
            target = Path(tmp) / checkpoint.name
            with contextlib.suppress(OSError):
                os.link(checkpoint, target)
            if not target.exists():
                shutil.copy2(checkpoint, target)
            session.report(metrics, Path(tmp))

    return report
