"""The tokenizer training loop: one class for a CPU process, a GPU, or one rank of a torch DDP job.

Each optimizer step runs ``grad_accum`` micro-batches through the autoencoder (under bf16 autocast on
CUDA), steps the generator optimizer, then - from ``disc_start`` on - the discriminator's, and updates
the weight EMA.  When ``torch.distributed`` is initialised the autoencoder is wrapped in DDP; the
discriminator is not (it runs twice per step, on real and fake batches separately as in taming, which
DDP's one-forward-one-backward bookkeeping does not allow), so its gradients are averaged by hand.
Only rank 0 writes files.  Checkpoints hold everything a resume needs - weights, both optimizers, the
discriminator, the EMA, the step, RNG states - so a resumed CPU run reproduces an uninterrupted one
exactly.  A non-finite loss or gradient stops the run before the optimizer touches the weights, and
weights are checked before every checkpoint write, so no file carries a diverged update; the error
names the newest checkpoint verified finite.  On resume a truncated newest checkpoint falls back to the
one before it, and ``metrics.jsonl`` is trimmed to the resumed step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from vq_core.acceleration import adam, maybe_compile, uses_bf16
from vq_core import CheckpointError, divergence_error, load_checkpoint, newest_finite_checkpoint, trim_metrics
from vq_core.checkpoint import Checkpoint, nonfinite_tensors
from vq_core.divergence import TrainingDivergedError
from vq_core.progress import progress
from vq_core.tracking import MetricsLogger
from vq_tokenizers.autoencoder import ConvVQTokenizer
from vq_tokenizers.base import save_tokenizer
from vq_tokenizers.images_io import reconstruction_grid, save_png
from vq_tokenizers.losses import LossConfig, VQGANLoss
from vq_tokenizers.training.checkpoints import (
    FINAL_NAME,
    latest_checkpoint,
    prune_checkpoints,
    step_checkpoint_path,
    step_checkpoints,
)
from vq_tokenizers.training.config import TrainConfig
from vq_tokenizers.training.ema import WeightEMA

log = logging.getLogger(__name__)

Hook = Callable[[dict[str, float], "Path | None"], None]
"""Called on every rank with the logged metrics; the second argument is a new checkpoint (rank 0) or None."""


class NonFiniteLossError(TrainingDivergedError):
    """A loss, gradient or weight became NaN/inf; the run stopped before it reached the weights or a file."""


FIX_DIVERGENCE = "lower --lr, set grad_clip (--train-set grad_clip=1.0) or check the input data"


class ResumableBatches(Protocol):
    def iter_from(self, batch_index: int) -> Iterator[torch.Tensor]: ...


def distributed_rank_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _epochs(loader: Iterable[Any]) -> Iterator[Any]:
    """Batches of a loader whose iterator ends with each epoch, epoch after epoch."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            raise ValueError("the data loader yielded no batch in a whole epoch; is the dataset smaller than one batch?")


def load_newest_readable(directory: Path, family: str, device: torch.device) -> tuple[Path, Checkpoint] | None:
    """The newest step checkpoint in ``directory`` that loads, falling back past unreadable ones (warning)."""
    found = step_checkpoints(directory)
    errors: list[str] = []
    for _, path in reversed(found):
        try:
            ckpt = load_checkpoint(path, family=family, map_location=device)
        except CheckpointError as err:
            errors.append(str(err))
            log.warning("%s; falling back to the checkpoint before it", err)
            continue
        if errors:
            log.warning("resuming from %s instead of the unreadable newer checkpoint(s)", path)
        return path, ckpt
    if errors:
        raise CheckpointError(f"no step checkpoint in {directory} is readable: {errors[0]}")
    return None


def load_resume_checkpoint(
    directory: Path, path: str | Path | None, family: str, device: torch.device
) -> tuple[Path, Checkpoint] | None:
    """The checkpoint a ``resume(path)`` continues from: ``path`` when given, else the newest readable step
    checkpoint in ``directory`` (:func:`load_newest_readable`); None when there is none to resume from."""
    if path is not None:
        return Path(path), load_checkpoint(path, family=family, map_location=device)
    return load_newest_readable(directory, family, device)


def default_device(local_rank: int = 0) -> torch.device:
    return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")


class Trainer:
    """Train a :class:`ConvVQTokenizer` with the VQGAN objective, writing into ``checkpoint_dir``.

    ``data`` yields image batches (B, 3, S, S) in [-1, 1] for this rank (or tuples whose first item is
    one).  On resume a stateful loader (``state_dict``/``load_state_dict``, as vq-data's) gets its saved
    state back, an object with ``iter_from(batch_index)`` (:class:`ImageBatches`) restarts at the right
    batch, and any other iterable is fast-forwarded by consuming the batches already trained on.
    """

    def __init__(
        self,
        model: ConvVQTokenizer,
        data: Iterable[torch.Tensor] | ResumableBatches,
        config: TrainConfig,
        checkpoint_dir: str | Path,
        *,
        loss: LossConfig | VQGANLoss | None = None,
        hooks: Sequence[Hook] = (),
        device: str | torch.device | None = None,
    ) -> None:
        self.config = config
        self.checkpoint_dir = Path(checkpoint_dir)
        self.rank, self.world_size = distributed_rank_world()
        self.device = torch.device(device or config.device or default_device(int(os.environ.get("LOCAL_RANK", 0))))
        self.hooks = list(hooks)
        self.data = data
        self.step = 0
        self.metrics_log = MetricsLogger(self.checkpoint_dir, config, enabled=self.rank == 0, run_config=config.model_dump(mode="json"))

        torch.manual_seed(config.seed)
        np.random.seed(config.seed % 2**32)
        random.seed(config.seed)

        memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.memory_format = memory_format
        self.model = model.to(self.device, memory_format=memory_format).train()
        self.loss = loss if isinstance(loss, VQGANLoss) else VQGANLoss(loss or LossConfig())
        self.loss.to(self.device, memory_format=memory_format).train()
        self.discriminator = self.loss.discriminator
        if self.world_size > 1:
            for tensor in self.discriminator.state_dict().values():
                dist.broadcast(tensor, 0)
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network: torch.nn.Module = DistributedDataParallel(
                self.model, device_ids=ids, find_unused_parameters=config.find_unused_parameters
            )
        else:
            self.network = self.model
        self.model_ddp = self.network
        # the compiled wrapper shares the parameters; checkpoints are written from self.model
        self.network = maybe_compile(self.network, config.compile)
        self._generator_loss = maybe_compile(self.loss.generator, config.compile)

        self.g_optimizer = adam(self.model.parameters(), device=self.device, lr=config.lr, betas=config.betas)
        self.d_optimizer = adam(
            self.discriminator.parameters(), device=self.device, lr=config.disc_lr or config.lr, betas=config.betas
        )
        self.ema = WeightEMA(self.model, config.ema_decay) if config.ema_decay > 0 else None
        self.autocast_enabled = uses_bf16(config.precision, self.device)
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}
        self._usage: torch.Tensor | None = None
        self._sample_batch: torch.Tensor | None = None

    # --- checkpoints ----------------------------------------------------------------------------
    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def resume(self, path: str | Path | None = None) -> bool:
        """Load the latest (or the given) checkpoint; False when there is none to resume from.

        Without ``path`` an unreadable newest checkpoint (a truncated copy, a full disk) falls back to
        the one before it, with a warning naming both.
        """
        found = load_resume_checkpoint(self.checkpoint_dir, path, self.model.family, self.device)
        if found is None:
            return False
        path, ckpt = found
        if ckpt.config_hash != self.model.config.config_hash():
            raise CheckpointError(
                f"checkpoint {path} was trained with another {self.model.family} config (hash {ckpt.config_hash}, "
                f"this run {self.model.config.config_hash()}); resume with the same preset/overrides or a new --out"
            )
        state = ckpt.state
        missing = [k for k in ("optimizer", "disc_optimizer", "discriminator") if k not in state]
        if missing:
            raise CheckpointError(f"checkpoint {path} holds no training state ({missing}); it cannot be resumed")
        self.model.load_state_dict(ckpt.model)
        self.g_optimizer.load_state_dict(state["optimizer"])
        self.d_optimizer.load_state_dict(state["disc_optimizer"])
        self.discriminator.load_state_dict(state["discriminator"])
        if self.ema is not None:
            if state.get("ema") is None:
                raise CheckpointError(f"checkpoint {path} has no EMA weights but this run has ema_decay > 0")
            self.ema.load_state_dict(state["ema"])
        rng = state["rng"]
        torch.set_rng_state(rng["torch"].cpu())
        if rng.get("cuda") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        if state.get("data") is not None and hasattr(self.data, "load_state_dict"):
            self.data.load_state_dict(state["data"])
        self.step = ckpt.step
        if self.is_main:
            trim_metrics(self.checkpoint_dir / "metrics.jsonl", self.step)
        log.info("resumed from %s at step %d", path, self.step)
        return True

    def load_weights(self, path: str | Path) -> None:
        """Start from another run's (or a converted) checkpoint's weights - and its discriminator, if it has one."""
        ckpt = load_checkpoint(path, family=self.model.family, map_location=self.device)
        try:
            self.model.load_state_dict(ckpt.model)
            if ckpt.state.get("discriminator") is not None:
                self.discriminator.load_state_dict(ckpt.state["discriminator"])
        except RuntimeError as err:
            raise CheckpointError(f"checkpoint {path} does not fit this run's model/discriminator: {err}") from err
        if self.ema is not None:
            self.ema = WeightEMA(self.model, self.config.ema_decay)
        log.info("initialised weights from %s", path)

    def _training_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.g_optimizer.state_dict(),
            "disc_optimizer": self.d_optimizer.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "loss_config": self.loss.config.model_dump(mode="json"),
            "train_config": self.config.model_dump(mode="json"),
            "data": self.data.state_dict() if hasattr(self.data, "state_dict") else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None,
                "numpy": np.random.get_state(),
                "python": random.getstate(),
            },
        }

    def save_checkpoint(self) -> Path | None:
        """Write a step checkpoint (rank 0) once every rank has checked that the weights are finite."""
        self._check_weights()
        if not self.is_main:
            return None
        path = step_checkpoint_path(self.checkpoint_dir, self.step)
        save_tokenizer(self.model, path, step=self.step, state=self._training_state())
        prune_checkpoints(self.checkpoint_dir, self.config.keep_checkpoints)
        log.info("checkpoint %s", path)
        return path

    def export(self, path: str | Path | None = None) -> Path | None:
        """Write the trained tokenizer alone (EMA weights when enabled), for tokenizing and evaluation."""
        self._check_weights()
        if not self.is_main:
            return None
        path = Path(path) if path else self.checkpoint_dir / FINAL_NAME
        if self.ema is None:
            return save_tokenizer(self.model, path, step=self.step)
        backup = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.ema.copy_to(self.model)
        try:
            return save_tokenizer(self.model, path, step=self.step)
        finally:
            self.model.load_state_dict(backup)

    # --- the loop ---------------------------------------------------------------------------------
    def _batches(self) -> Iterator[torch.Tensor]:
        """Image batches from where the run stands; (images, labels, ...) tuples give their images."""
        consumed = self.step * self.config.grad_accum
        if hasattr(self.data, "state_dict"):  # a stateful loader (vq-data): positioned by load_state_dict
            iterator = _epochs(self.data)
        elif hasattr(self.data, "iter_from"):
            iterator = iter(self.data.iter_from(consumed))
        else:
            iterator = iter(self.data)
            for _ in range(consumed):
                next(iterator)
        return (batch[0] if isinstance(batch, (tuple, list)) else batch for batch in iterator)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast_enabled)

    def train(self) -> dict[str, float]:
        """Run until ``config.steps``; returns the last logged metrics."""
        config = self.config
        if self.step == 0 and latest_checkpoint(self.checkpoint_dir) is not None:
            raise FileExistsError(
                f"{self.checkpoint_dir} already holds checkpoints; resume them (--resume) or choose another --out"
            )
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if self.is_main:
            trim_metrics(self.checkpoint_dir / "metrics.jsonl", self.step)
        batches = self._batches()
        last: dict[str, float] = {}
        start = time.perf_counter()
        start_step = self.step
        bar = progress(total=config.steps, initial=self.step, desc=f"train {self.model.family}", unit="step", enabled=None if self.is_main else False)
        while self.step < config.steps:
            micro = [next(batches).to(self.device, non_blocking=True) for _ in range(config.grad_accum)]
            if self._sample_batch is None:
                self._check_batch(micro[0])
                self._sample_batch = micro[0][:8].clone()
            self.train_step(micro)
            self.step += 1
            bar.update(1)
            final = self.step == config.steps
            metrics = None
            if self.step % config.log_every == 0 or final:
                metrics = last = self._flush_metrics((time.perf_counter() - start) / (self.step - start_step))
                start, start_step = time.perf_counter(), self.step
            if self.step % config.sample_every == 0 or final:
                self.save_samples()
            checkpoint_step = self.step % config.ckpt_every == 0 or final
            checkpoint = self.save_checkpoint() if checkpoint_step else None
            if metrics is not None or checkpoint_step:  # same calls on every rank, as Ray requires
                self._report(metrics or {"step": float(self.step)}, checkpoint)
        bar.close()
        self.export()
        return last

    def _check_batch(self, images: torch.Tensor) -> None:
        expected = self.config.micro_batch_size(self.world_size)
        if images.shape[0] != expected:
            raise ValueError(
                f"data yields batches of {images.shape[0]} images but batch_size {self.config.batch_size} / "
                f"(grad_accum {self.config.grad_accum} x {self.world_size} processes) needs {expected}"
            )
        self.model.check_image_size(images)

    def train_step(self, micro: list[torch.Tensor]) -> None:
        """One optimizer step (generator, then discriminator from disc_start on) over ``grad_accum`` micro-batches."""
        config = self.config
        with_gan = self.step >= config.disc_start and self.loss.config.gan_weight > 0
        self.g_optimizer.zero_grad(set_to_none=True)
        micro = [images.contiguous(memory_format=self.memory_format) for images in micro]
        recons = []
        bad_loss = torch.zeros((), device=self.device)
        for i, images in enumerate(micro):
            sync = i == len(micro) - 1 or not isinstance(self.model_ddp, DistributedDataParallel)
            with contextlib.nullcontext() if sync else self.model_ddp.no_sync():
                with self._autocast():
                    out = self.network(images)
                    loss, logs = self._generator_loss(images, out.recon, out.quant_loss, self.model.last_layer, with_gan=with_gan)
                bad_loss += ~torch.isfinite(loss.detach())
                (loss / len(micro)).backward()
            recons.append(out.recon.detach())
            self._accumulate(logs, out.indices)
        self._guard("generator", bad_loss, self._clip(self.model.parameters()), logs)
        self.g_optimizer.step()

        if with_gan:
            self.d_optimizer.zero_grad(set_to_none=True)
            bad_loss = torch.zeros((), device=self.device)
            for images, recon in zip(micro, recons):
                with self._autocast():
                    d_loss, d_logs = self.loss.discriminator_loss(images, recon)
                bad_loss += ~torch.isfinite(d_loss.detach())
                (d_loss / len(micro)).backward()
                self._accumulate(d_logs, None)
            self._average_discriminator_grads()
            self._guard("discriminator", bad_loss, self._clip(self.discriminator.parameters()), d_logs)
            self.d_optimizer.step()
        if self.ema is not None:
            self.ema.update(self.model)

    def _clip(self, params: Iterable[torch.nn.Parameter]) -> torch.Tensor:
        """Clip to ``grad_clip`` (when set); the total gradient norm before clipping, on the device."""
        params = [p for p in params if p.grad is not None]
        if self.config.grad_clip is not None:
            return torch.nn.utils.clip_grad_norm_(params, self.config.grad_clip)
        return torch.nn.utils.get_total_norm([p.grad for p in params]).to(self.device)

    def _average_discriminator_grads(self) -> None:
        if self.world_size == 1:
            return
        grads = [p.grad for p in self.discriminator.parameters() if p.grad is not None]
        flat = torch.cat([g.flatten() for g in grads])
        dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def _guard(self, what: str, bad_loss: torch.Tensor, grad_norm: torch.Tensor, logs: dict[str, torch.Tensor]) -> None:
        """Stop before ``what``'s optimizer step when a loss or the gradient norm is NaN/inf on any rank.

        One host sync per optimizer step: the flags stay on the device until this check.
        """
        flags = torch.stack([bad_loss.float(), (~torch.isfinite(grad_norm.detach())).float().to(bad_loss.device)])
        if self.world_size > 1:
            dist.all_reduce(flags)  # every rank stops together instead of hanging in the next all-reduce
        loss_bad, grad_bad = flags.tolist()
        if loss_bad:
            parts = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in logs.items())
            raise self._diverged(f"{what} loss is not finite ({parts}) on some rank")
        if grad_bad:
            raise self._diverged(f"{what} gradient norm is not finite ({float(grad_norm):.4g}) on some rank")

    def _check_weights(self) -> None:
        """Refuse to write checkpoints of weights that hold NaN/inf (every rank checks: all stop together)."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"discriminator.{k}": v for k, v in self.discriminator.state_dict().items()})
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()})
        bad = nonfinite_tensors(tensors)
        if bad:
            raise self._diverged(f"weights {bad[:3]} are not finite after the update", stopped="before writing them")

    def _diverged(self, what: str, stopped: str = "before updating the weights") -> NonFiniteLossError:
        newest = newest_finite_checkpoint(
            (p for _, p in reversed(step_checkpoints(self.checkpoint_dir))), family=self.model.family
        )
        error = divergence_error(self.step, what, newest, FIX_DIVERGENCE, stopped=stopped)
        return NonFiniteLossError(str(error))

    # --- metrics, samples, reports -------------------------------------------------------------
    def _accumulate(self, logs: dict[str, torch.Tensor], indices: torch.Tensor | None) -> None:
        """Sum loss terms on the device (no host sync per step) and count code usage."""
        for key, value in logs.items():
            value = value.detach().float()
            self._sums[key] = self._sums[key] + value if key in self._sums else value
            self._counts[key] = self._counts.get(key, 0) + 1
        if indices is not None:
            counts = torch.bincount(indices.flatten(), minlength=self.model.codebook_size)
            self._usage = counts if self._usage is None else self._usage + counts

    def _flush_metrics(self, seconds_per_step: float) -> dict[str, float]:
        """Average the window's terms over micro-batches and ranks; usage and perplexity of the codes."""
        keys = sorted(self._sums)
        sums = torch.stack([self._sums[k] for k in keys]).double() if keys else torch.zeros(0, dtype=torch.float64)
        counts = torch.tensor([self._counts[k] for k in keys], dtype=torch.float64, device=sums.device)
        usage = self._usage if self._usage is not None else torch.zeros(self.model.codebook_size, device=sums.device)
        packed = torch.cat([sums, counts, usage.double().to(sums.device)])
        if self.world_size > 1:
            dist.all_reduce(packed)
        packed = packed.cpu()
        sums, counts, usage = packed[: len(keys)], packed[len(keys) : 2 * len(keys)], packed[2 * len(keys) :]
        metrics = {"step": float(self.step)}
        metrics.update({k: float(v / max(c, 1.0)) for k, v, c in zip(keys, sums.tolist(), counts.tolist())})
        probs = usage / usage.sum().clamp(min=1)
        nonzero = probs[probs > 0]
        metrics["codebook_usage"] = float((usage > 0).double().mean())
        metrics["perplexity"] = float(torch.exp(-(nonzero * nonzero.log()).sum()))
        metrics["seconds_per_step"] = seconds_per_step
        metrics["lr"] = self.g_optimizer.param_groups[0]["lr"]
        self._sums, self._counts, self._usage = {}, {}, None
        if self.is_main:
            log.info("step %d: %s", self.step, ", ".join(f"{k}={v:.4g}" for k, v in metrics.items() if k != "step"))
            self.metrics_log.log(metrics)  # metrics.jsonl + TensorBoard (+ W&B)
        return metrics

    @torch.no_grad()
    def save_samples(self) -> Path | None:
        """Write inputs over reconstructions of a fixed batch to ``samples/step_<n>.png``."""
        if not self.is_main or self._sample_batch is None:
            return None
        self.model.eval()
        try:
            with self._autocast():
                recon = self.model(self._sample_batch.contiguous(memory_format=self.memory_format)).recon
        finally:
            self.model.train()
        path = self.checkpoint_dir / "samples" / f"step_{self.step:08d}.png"
        save_png(reconstruction_grid(self._sample_batch, recon), path)
        return path

    def _report(self, metrics: dict[str, float], checkpoint: Path | None) -> None:
        for hook in self.hooks:
            hook(metrics, checkpoint)
