"""The AR training loop: one function for a CPU process, one GPU, torchrun DDP or a Ray Train worker.

LlamaGen's recipe: AdamW (betas 0.9/0.95, weight decay 0.05 on matrices and embeddings only), label
dropout 0.1 to the null class for classifier-free guidance, gradient clipping at 1.0, bf16 autocast
on CUDA; plus a cosine schedule with linear warmup and gradient accumulation.

Resuming is exact.  Every optimizer step reseeds torch from (seed, rank, step), and the batch order is
a pure function of (seed, micro-batch index), so a checkpoint needs only weights, optimizer, scheduler
and the micro-batch counter: a run stopped at step k and resumed reproduces the uninterrupted run.

Distributed use: when ``torch.distributed`` is initialised (torchrun, Ray Train), the model is wrapped
in DDP, each rank reads its own slice of every global batch, and only rank 0 writes files.
``session`` is optional and duck-typed on :class:`vq_core.launch.TrainSession` (``report`` metrics and
the checkpoint directory, ``restore_dir`` to resume from what Ray kept).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vq_ar.checkpoint import LoadedAR, load_ar, save_ar
from vq_ar.config import ARConfig, ar_config
from vq_ar.data import BatchOrder, TokenSet, load_token_set
from vq_ar.ema import WeightEMA
from vq_ar.model import build_ar_model
from vq_core import (
    CheckpointError,
    ManifestError,
    StrictConfig,
    atomic_write_text,
    divergence_error,
    newest_finite_checkpoint,
    nonfinite_tensors,
    progress,
    trim_metrics,
)
from vq_core.acceleration import adam, maybe_compile, uses_bf16
from vq_core.divergence import TrainingDivergedError
from vq_core.tracking import MetricsLogger, TrackingFields
from vq_data import open_manifest

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.safetensors"
PREVIOUS_CHECKPOINT = "previous.safetensors"
"""The checkpoint before ``last``: a resume falls back to it when ``last`` is unreadable."""
FINAL_MODEL = "model.safetensors"
METRICS_FILE = "metrics.jsonl"


class TrainConfig(TrackingFields):
    """Optimisation settings; ``batch_size`` is global (all ranks and accumulation micro-batches)."""

    steps: int = Field(default=1000, gt=0, description="optimizer steps")
    batch_size: int = Field(default=256, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    lr: float = Field(default=1e-4, gt=0)
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1, description="cosine floor as a fraction of lr")
    warmup_steps: int = Field(default=0, ge=0)
    weight_decay: float = Field(default=0.05, ge=0)
    weight_decay_on: Literal["matrices", "all"] = Field(
        default="matrices",
        description="matrices: LlamaGen's split (matrices and embeddings decayed, norm gains not); "
        "all: every parameter, as the seed's AdamW over all transformer parameters",
    )
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(default=1e-8, gt=0, description="AdamW epsilon (torch's default; the seed's recipe uses 1e-6)")
    grad_clip: float = Field(default=1.0, ge=0, description="0 = no clipping")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        default="auto", description="auto: bf16 autocast on CUDA; bf16 forces autocast on CPU too (fp32 weights)"
    )
    compile: bool = Field(default=False, description="torch.compile the forward + loss step")
    seed: int = 0
    log_every: int = Field(default=50, gt=0)
    ckpt_every: int = Field(default=1000, gt=0)
    ema_decay: float = Field(
        default=0.0, ge=0, lt=1,
        description="weight EMA after every optimizer step, LlamaGen's --ema (0.9999); 0 = off. The final model "
        "holds the averaged weights; training checkpoints keep the raw ones plus the average",
    )


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind."""

    step: int
    metrics: dict[str, float]
    checkpoint: Path
    model: Path | None


def lr_factor(step: int, config: TrainConfig) -> float:
    """Multiplier of ``lr`` at optimizer step ``step``: linear warmup, then cosine to min_lr_ratio."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    span = max(1, config.steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def param_groups(model: nn.Module, weight_decay: float, *, decay_all: bool = False) -> list[dict[str, Any]]:
    """Decay matrices and embeddings, not norm gains (LlamaGen's split by parameter rank), or everything."""
    decay = [p for p in model.parameters() if p.requires_grad and (decay_all or p.dim() >= 2)]
    other = [p for p in model.parameters() if p.requires_grad and not (decay_all or p.dim() >= 2)]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": other, "weight_decay": 0.0}]


def maybe_compile_loss(enabled: bool) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """:func:`token_loss`, compiled (forward, cross entropy and accuracy in one graph) when ``enabled``."""
    return maybe_compile(token_loss, enabled)


def token_loss(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean next-token cross entropy and argmax accuracy of (B, N) tokens given (B,) labels."""
    logits = model(labels, tokens[:, :-1])
    loss = F.cross_entropy(logits.flatten(0, 1), tokens.flatten())
    accuracy = (logits.argmax(-1) == tokens).float().mean()
    return loss, accuracy


def drop_labels(labels: torch.Tensor, p: float, null_class: int) -> torch.Tensor:
    """Replace each label by the null class with probability ``p`` (classifier-free guidance)."""
    if p <= 0:
        return labels
    dropped = torch.rand(labels.shape, device=labels.device) < p
    return torch.where(dropped, torch.full_like(labels, null_class), labels)


class _Window:
    """Running sums of loss/accuracy kept on the device, so steps do not wait for a GPU sync."""

    def __init__(self, device: torch.device) -> None:
        self.sums = torch.zeros(2, dtype=torch.float64, device=device)
        self.count = 0

    def add(self, loss: torch.Tensor, accuracy: torch.Tensor) -> None:
        self.sums += torch.stack([loss.detach().double(), accuracy.double()])
        self.count += 1

    def means(self) -> dict[str, float]:
        loss, accuracy = (self.sums / max(self.count, 1)).tolist()
        return {"loss": loss, "token_acc": accuracy}


def _step_seed(seed: int, rank: int, step: int) -> int:
    return int(np.random.SeedSequence([seed, rank, step]).generate_state(1)[0])


def _dist_info(session: Any | None) -> tuple[int, int, torch.device]:
    if session is not None:
        return session.rank, session.world_size, torch.device(session.device)
    if dist.is_available() and dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    local = int(os.environ.get("LOCAL_RANK", 0))
    return rank, world, torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")


def _mean_across_ranks(values: dict[str, float], device: torch.device, world: int) -> dict[str, float]:
    if world == 1:
        return values
    packed = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    dist.all_reduce(packed)
    return dict(zip(values, (packed / world).tolist()))


def _load_resume_point(session: Any | None, last: Path, resume: bool) -> LoadedAR | None:
    """The checkpoint to continue from: what Ray kept for this worker (after a restart), else ``last``
    (or ``previous`` when ``last`` is unreadable: the damaged file is moved aside, saying so)."""
    if session is not None and hasattr(session, "restore_dir"):
        with session.restore_dir() as restored:
            if restored is not None and (Path(restored) / LAST_CHECKPOINT).is_file():
                log.info("restoring from the checkpoint the launcher kept (%s)", restored)
                return load_ar(Path(restored) / LAST_CHECKPOINT, map_location="cpu")
    previous = last.with_name(PREVIOUS_CHECKPOINT)
    if not last.is_file() and not previous.is_file():
        if resume:
            log.info("no checkpoint at %s: starting from scratch", last)
        return None
    if not resume:
        raise FileExistsError(f"{last} exists; pass --resume to continue it or choose another --out")
    if not last.is_file():
        log.warning("%s is missing (a run killed while rotating checkpoints?); resuming from %s", last, previous)
        return load_ar(previous, map_location="cpu")
    try:
        return load_ar(last, map_location="cpu")
    except CheckpointError as err:
        if not previous.is_file():
            raise
        damaged = last.with_name(last.name + ".damaged")
        os.replace(last, damaged)
        log.warning("%s; resuming from the checkpoint before it, %s (the damaged file is kept as %s)", err, previous, damaged)
        return load_ar(previous, map_location="cpu")


_RESUME_FLAGS = {"batch_size": "--batch-size", "grad_accum": "--grad-accum", "seed": "--seed"}
"""Training settings that fix the batch order: a resume that changed them would silently train on other batches."""


def _check_resume_settings(restored: LoadedAR, config: TrainConfig) -> None:
    """Refuse a resume whose batch-order settings differ from the saved run's, naming each flag."""
    saved = restored.state.get("train", {})
    wrong = [
        f"{flag} was {saved[key]!r}, now {getattr(config, key)!r}"
        for key, flag in _RESUME_FLAGS.items()
        if key in saved and saved[key] != getattr(config, key)
    ]
    if wrong:
        raise ValueError(
            f"cannot resume {restored.path}: " + "; ".join(wrong)
            + "; these fix the batch order, so resume with the saved values or train into another --out"
        )


def _keep_previous(last: Path) -> None:
    """Make the current ``last`` the ``previous`` checkpoint (a hard link: no copy) before a new one replaces it."""
    if not last.is_file():
        return
    previous, tmp = last.with_name(PREVIOUS_CHECKPOINT), last.with_name(f".{PREVIOUS_CHECKPOINT}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(last, tmp)
    except OSError:  # a filesystem without hard links
        shutil.copy2(last, tmp)
    os.replace(tmp, previous)


def _report(session: Any, metrics: dict[str, float], checkpoint: Path | None, is_main: bool) -> None:
    """Report to the launcher (every rank: Ray wants the same calls); rank 0's new checkpoint goes in a
    directory holding only it (Ray uploads directories, and ``previous`` need not travel)."""
    if checkpoint is None or not is_main:
        session.report(metrics, checkpoint_dir=None)
        return
    with tempfile.TemporaryDirectory(prefix="vq-ar-ckpt-") as tmp:
        target = Path(tmp) / checkpoint.name
        try:
            os.link(checkpoint, target)
        except OSError:
            shutil.copy2(checkpoint, target)
        session.report(metrics, checkpoint_dir=Path(tmp))


def _diverged(step: int, what: str, ckpt_dir: Path, stopped: str = "before updating the weights") -> TrainingDivergedError:
    newest = newest_finite_checkpoint([ckpt_dir / LAST_CHECKPOINT, ckpt_dir / PREVIOUS_CHECKPOINT], family="ar")
    fix = "lower --lr (or raise --warmup-steps, lower --grad-clip) and --resume, or check the token data"
    return divergence_error(step, what, newest, fix, stopped=stopped)


def _guard(step: int, bad_loss: torch.Tensor, grad_norm: torch.Tensor, world: int, ckpt_dir: Path) -> None:
    """Stop before the optimizer step when a loss or the gradient norm is NaN/inf on any rank (one sync a step)."""
    flags = torch.stack([bad_loss.float(), (~torch.isfinite(grad_norm.detach())).float()])
    if world > 1:
        dist.all_reduce(flags)  # every rank stops together instead of hanging in the next all-reduce
    loss_bad, grad_bad = flags.tolist()
    if loss_bad:
        raise _diverged(step, "the training loss is not finite on some rank", ckpt_dir)
    if grad_bad:
        raise _diverged(step, f"the gradient norm is not finite ({float(grad_norm):.4g}) on some rank", ckpt_dir)


def train(
    data: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    size: str = "tiny",
    model_config: ARConfig | None = None,
    model_overrides: dict[str, Any] | None = None,
    config: TrainConfig | None = None,
    resume: bool = False,
    stop_at: int | None = None,
    session: Any | None = None,
    verify: bool = True,
) -> TrainResult:
    """Train an AR model on the token shards in ``data``; write checkpoints and logs under ``out``.

    The model is ``model_config`` if given, else the named ``size`` for the manifest's codebook, class
    count and grid (``model_overrides`` change any field, e.g. dropout).  ``resume`` continues from
    ``out/checkpoints/last.safetensors`` when it exists; without it an existing checkpoint is an error.
    ``stop_at`` ends this invocation after that step (with a resumable checkpoint), for time-sliced jobs.
    ``verify=False`` reads the shards without checking their sha256 (not a training setting: a resume may change it).
    """
    config = config or TrainConfig()
    data, out = Path(data), Path(out)
    rank, world, device = _dist_info(session)
    is_main = rank == 0
    ckpt_dir = out / CHECKPOINT_DIR
    last = ckpt_dir / LAST_CHECKPOINT
    manifest = open_manifest(data)
    token_set = load_token_set(data, manifest=manifest, verify=verify)
    restored = _load_resume_point(session, last, resume)
    if restored is not None:
        if model_config is not None and model_config != restored.config:
            raise ValueError(f"{restored.path} holds another model config than the one given; drop the config or --resume")
        model_config = restored.config
        restored.check_manifest(manifest, where=data / "manifest.json")
        _check_resume_settings(restored, config)
    elif model_config is None:
        tok = manifest.tokenizer
        assert tok is not None  # load_token_set refused non-token manifests
        model_config = ar_config(
            size,
            vocab_size=tok.codebook_size,
            num_classes=token_set.num_classes,
            grid=tuple(tok.grid),
            **(model_overrides or {}),
        )
    _check_data_fits(model_config, token_set, data)

    micro = config.batch_size // (world * config.grad_accum)
    if micro * world * config.grad_accum != config.batch_size:
        raise ValueError(
            f"--batch-size {config.batch_size} is not divisible by --num-workers {world} x --grad-accum {config.grad_accum}; "
            "pick a multiple of their product"
        )
    if config.batch_size > token_set.num_samples:
        raise ValueError(
            f"--batch-size {config.batch_size} exceeds the {token_set.num_samples} samples of {data} "
            f"(a batch would repeat samples); use --batch-size {token_set.num_samples} or less"
        )
    torch.manual_seed(config.seed)  # identical initial weights on every rank and in every re-run
    model = build_ar_model(model_config).to(device)
    optimizer = adam(
        param_groups(model, config.weight_decay, decay_all=config.weight_decay_on == "all"),
        device=device,
        decoupled=True,
        lr=config.lr,
        betas=config.betas,
        eps=config.eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, config))
    step, micro_batch = 0, 0
    if restored is not None:
        model.load_state_dict(restored.model.state_dict())
        optimizer.load_state_dict(restored.state["optimizer"])
        scheduler.load_state_dict(restored.state["scheduler"])
        step, micro_batch = restored.step, int(restored.state["data_position"]["micro_batch"])
        log.info("resumed %s at step %d", restored.path, step)
    ema = WeightEMA(model, config.ema_decay) if config.ema_decay > 0 else None
    if ema is not None and restored is not None:
        if "ema" not in restored.state:
            raise ValueError(f"{restored.path} has no EMA weights to resume with ema_decay {config.ema_decay}; resume without it")
        ema.load_state_dict(restored.state["ema"])
    net: nn.Module = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    order = BatchOrder(token_set, micro, seed=config.seed, rank=rank, world_size=world)
    bf16 = uses_bf16(config.precision, device)
    step_loss = maybe_compile_loss(config.compile)
    tokenizer, dataset = manifest.tokenizer, manifest.dataset
    assert tokenizer is not None
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        trim_metrics(out / METRICS_FILE, step)  # lines past the resume step will be logged again
        summary = {"data": str(data), "model": model_config.model_dump(mode="json"), "train": config.model_dump(mode="json")}
        atomic_write_text(out / "train.json", json.dumps(summary, indent=2) + "\n")
    metrics_log = MetricsLogger(out, config, enabled=is_main, run_config=config.model_dump(mode="json"))

    def check_weights() -> None:
        """Every rank (same weights under DDP) refuses to write NaN/inf weights, so all stop together."""
        bad = nonfinite_tensors(model.state_dict())
        if bad:
            raise _diverged(step, f"weights {bad[:3]} are not finite after the update", ckpt_dir, stopped="before writing them")

    def checkpoint(metrics: dict[str, float]) -> None:
        check_weights()
        if is_main:
            _keep_previous(last)
            state = {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "data_position": {"micro_batch": micro_batch, "seed": config.seed},
                "train": config.model_dump(mode="json"),
                "metrics": metrics,
            }
            if ema is not None:
                state["ema"] = ema.state_dict()
            save_ar(last, model, tokenizer=tokenizer, dataset=dataset, step=step, state=state)

    end = config.steps if stop_at is None else min(stop_at, config.steps)
    metrics: dict[str, float] = {}
    window = _Window(device)
    tic = time.perf_counter()
    bar = progress(total=end, initial=step, desc="vq-ar train", enabled=None if is_main else False)
    model.train()
    while step < end:
        torch.manual_seed(_step_seed(config.seed, rank, step))
        bad_loss = torch.zeros((), device=device)
        for m in range(config.grad_accum):
            tokens, labels = order.batch(micro_batch, device)
            micro_batch += 1
            labels = drop_labels(labels, model_config.class_dropout, model.null_class)
            sync = m == config.grad_accum - 1 or world == 1
            with (contextlib.nullcontext() if sync else net.no_sync()), torch.autocast(
                device.type, dtype=torch.bfloat16, enabled=bf16
            ):
                loss, accuracy = step_loss(net, tokens, labels)
            (loss / config.grad_accum).backward()
            window.add(loss, accuracy)
            bad_loss += ~torch.isfinite(loss.detach())
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip if config.grad_clip > 0 else math.inf)
        _guard(step, bad_loss, grad_norm, world, ckpt_dir)  # before the optimizer touches the weights
        optimizer.step()
        if ema is not None:
            ema.update(model)
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        bar.update(1)
        log_now = step % config.log_every == 0 or step == end
        save_now = step % config.ckpt_every == 0 or step == end
        if log_now:
            elapsed = time.perf_counter() - tic
            local = {**window.means(), "grad_norm": float(grad_norm)}
            metrics = {"step": step, **_mean_across_ranks(local, device, world)}
            metrics["lr"] = scheduler.get_last_lr()[0]
            metrics["samples_per_s"] = window.count * micro * world / max(elapsed, 1e-9)
            window = _Window(device)
            tic = time.perf_counter()
            bar.set_postfix(loss=f"{metrics['loss']:.4f}", acc=f"{metrics['token_acc']:.3f}")
            if is_main:
                log.info("step %d/%d loss %.4f token_acc %.4f", step, config.steps, metrics["loss"], metrics["token_acc"])
                metrics_log.log(metrics)  # metrics.jsonl + TensorBoard (+ W&B)
        if save_now:
            checkpoint(metrics)
        if (log_now or save_now) and session is not None:
            _report(session, metrics or {"step": step}, last if save_now else None, is_main)
    bar.close()

    final = None
    if step >= config.steps:
        final = out / FINAL_MODEL
        check_weights()
        if is_main:
            weights = {"metrics": metrics} if ema is None else {"metrics": metrics, "weights": "ema", "ema_decay": ema.decay}
            save_ar(final, model if ema is None else ema.averaged_copy(model), tokenizer=tokenizer, dataset=dataset,
                    step=step, state=weights)
    if world > 1:
        dist.barrier()
    return TrainResult(step=step, metrics=metrics, checkpoint=last, model=final)


def _check_data_fits(config: ARConfig, token_set: TokenSet, data: Path) -> None:
    """Refuse shards the model cannot represent, naming both sides."""
    manifest = token_set.manifest
    try:
        manifest.check_tokenizer(codebook_size=config.vocab_size, grid=config.grid, where="AR model config")
    except ManifestError as err:
        raise ManifestError(f"{data / 'manifest.json'}: {err}") from err
    if token_set.num_classes > config.num_classes:
        raise ManifestError(
            f"{data / 'manifest.json'}: dataset has {token_set.num_classes} classes but the AR model config "
            f"has num_classes {config.num_classes}; build the model from this manifest"
        )


def train_loop(loop_config: dict[str, Any], session: Any) -> dict[str, float]:
    """``vq_core.launch`` entry: ``{"data", "out", "size"?, "model"?, "train"?, "resume"?, "verify"?}`` -> final metrics."""
    result = train(
        loop_config["data"],
        loop_config["out"],
        size=loop_config.get("size", "tiny"),
        model_config=ARConfig.from_dict(loop_config["model"]) if loop_config.get("model") else None,
        model_overrides=loop_config.get("model_overrides"),
        config=TrainConfig.from_dict(loop_config.get("train", {}), source="train_loop config['train']"),
        resume=bool(loop_config.get("resume", False)),
        session=session,
        verify=bool(loop_config.get("verify", True)),
    )
    return result.metrics
