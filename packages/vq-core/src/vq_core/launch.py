"""One entry point for training loops: in-process on CPU/one GPU, or as a Ray Train ``TorchTrainer`` job.

A loop is a function ``fn(config: dict, session: TrainSession)``.  It sets nothing up itself: the
session tells it its rank, world size and device, where to resume from, and takes its reports.
In-process, the session is a thin local object; under Ray, each worker gets a session whose
``report`` forwards metrics and checkpoints to ``ray.train.report`` (rank 0 uploads the checkpoint
directory; every rank reports, as Ray requires) and whose ``restore_dir`` unpacks the latest
checkpoint Ray kept, so a worker killed mid-run restarts from it (``FailureConfig``).
Ray is imported only when a Ray job is asked for.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass
class TrainSession:
    """What a training loop needs to know about where it runs."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """Record metrics (and, on rank 0, a directory holding the checkpoint just written).

        In-process the loops log their own progress, so this stays at DEBUG to avoid every line twice.
        """
        log.debug("step %s: %s", metrics.get("step"), {k: v for k, v in metrics.items() if k != "step"})

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[Path | None]:
        """A directory with the latest checkpoint to resume from, or None (local runs resume from disk)."""
        yield None


class RaySession(TrainSession):
    """Session of one Ray Train worker."""

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        import ray.train

        checkpoint = None
        if checkpoint_dir is not None and self.is_main:
            checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir))
        ray.train.report(dict(metrics), checkpoint=checkpoint)

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)


def local_session(device: str | torch.device | None = None) -> TrainSession:
    """Session for a plain process; picks up torch.distributed (e.g. torchrun) when initialised."""
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() else (0, 1)
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    return TrainSession(rank=rank, world_size=world, local_rank=local_rank, device=torch.device(device))


def _ray_worker(payload: dict[str, Any]) -> None:
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    session = RaySession(
        rank=context.get_world_rank(),
        world_size=context.get_world_size(),
        local_rank=context.get_local_rank(),
        device=ray.train.torch.get_device(),
    )
    payload["fn"](payload["config"], session)


def launch(
    fn: Callable[[dict[str, Any], TrainSession], Any],
    config: dict[str, Any],
    *,
    ray_address: str | None = None,
    num_workers: int = 1,
    use_gpu: bool = False,
    storage_path: str | os.PathLike[str] | None = None,
    name: str = "vq-train",
    max_failures: int = 0,
) -> Any:
    """Run ``fn`` in this process, or with ``num_workers`` Ray Train workers when Ray is asked for.

    ``ray_address`` is ``None`` for in-process runs, ``"local"`` for a Ray instance started here, or an
    address such as ``"auto"`` / ``"ray://head:10001"`` for a cluster.  Returns ``fn``'s result locally
    and Ray's ``Result`` (metrics, latest checkpoint) for Ray runs.
    """
    if ray_address is None:
        if num_workers != 1:
            raise ValueError("--num-workers > 1 needs Ray: pass --ray-address local (or auto for a cluster)")
        return fn(config, local_session())
    try:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer
    except ImportError as err:
        raise RuntimeError("Ray is not installed: pip install 'ray[train,data]'") from err
    if not ray.is_initialized():
        ray.init(address=None if ray_address == "local" else ray_address, include_dashboard=False, log_to_driver=False)
    storage = str(storage_path or tempfile.mkdtemp(prefix="vq-ray-"))
    if "://" not in storage:  # s3://, gs://, ... go to Ray as they are; local paths must be absolute
        storage = str(Path(storage).resolve())
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"fn": fn, "config": config},
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu),
        run_config=RunConfig(storage_path=storage, name=name, failure_config=FailureConfig(max_failures=max_failures)),
    )
    return trainer.fit()


def copy_checkpoint_files(source: Path, target: Path) -> None:
    """Copy a restored checkpoint directory's files into a loop's own checkpoint directory."""
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)


def final_metrics(result: Any, *, name: str, storage: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The last metrics of a :func:`launch` call: ``fn``'s return value in-process, Ray's last report
    otherwise.  A Ray run that failed (after its restarts) raises, naming where its files are."""
    if not (hasattr(result, "metrics") and hasattr(result, "error")):
        return dict(result or {})
    if result.error is not None:
        where = f" (its files are under {Path(storage) / name})" if storage is not None else ""
        raise RuntimeError(f"Ray job {name} failed{where}: {result.error}") from result.error
    return dict(result.metrics or {})
