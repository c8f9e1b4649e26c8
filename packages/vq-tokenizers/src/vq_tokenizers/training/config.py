"""Optimisation settings of a tokenizer training run (the model and loss have their own configs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vq_core.tracking import TrackingFields


class TrainConfig(TrackingFields):
    """One run's schedule.  ``batch_size`` is the global batch of one optimizer step (as the published
    setups state it); each process feeds ``batch_size / (grad_accum * world_size)`` images per micro-step."""

    steps: int = Field(default=1000, gt=0, description="optimizer steps in total (a resumed run counts on)")
    batch_size: int = Field(default=8, gt=0, description="images per optimizer step over all processes")
    grad_accum: int = Field(default=1, gt=0)
    lr: float = Field(default=1e-4, gt=0, description="generator (autoencoder) learning rate")
    disc_lr: float | None = Field(default=None, gt=0, description="discriminator learning rate; None: same as lr")
    betas: tuple[float, float] = (0.5, 0.9)
    grad_clip: float | None = Field(default=None, gt=0, description="max grad norm; None: no clipping")
    disc_start: int = Field(default=0, ge=0, description="first step with GAN terms and discriminator updates")
    ema_decay: float = Field(default=0.0, ge=0, lt=1, description="EMA of weights; 0 disables")
    log_every: int = Field(default=50, gt=0)
    ckpt_every: int = Field(default=1000, gt=0)
    sample_every: int = Field(default=500, gt=0, description="steps between reconstruction grids (PNG)")
    keep_checkpoints: int = Field(default=3, gt=0, description="how many step checkpoints to keep on disk")
    seed: int = 0
    device: str | None = Field(default=None, description="None: cuda:<local rank> when available, else cpu")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        default="auto", description="auto: bf16 autocast on CUDA, fp32 on CPU; bf16 forces autocast on CPU too"
    )
    compile: bool = Field(default=False, description="torch.compile the autoencoder forward and the generator loss")
    channels_last: bool = True
    find_unused_parameters: bool = False

    @model_validator(mode="after")
    def _betas_in_range(self) -> TrainConfig:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"betas must lie in [0, 1), got {self.betas}")
        return self

    def micro_batch_size(self, world_size: int = 1) -> int:
        """Images per process and micro-step; the global batch must split evenly."""
        parts = self.grad_accum * world_size
        if self.batch_size % parts:
            raise ValueError(
                f"batch_size {self.batch_size} does not split into grad_accum {self.grad_accum} x {world_size} processes; "
                f"choose a multiple of {parts}"
            )
        return self.batch_size // parts
