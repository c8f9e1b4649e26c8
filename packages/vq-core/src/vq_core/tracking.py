"""Where a trainer's logged metrics go: ``metrics.jsonl``, TensorBoard and (when asked for) W&B.

Every trainer (``vq-tok train``, ``train-vqkd``, ``vq-ar train``) logs through one
:class:`MetricsLogger`, so the three sinks always hold the same numbers:

* ``OUT/metrics.jsonl`` - one JSON line per logged step (:mod:`vq_core.metrics_log`), the record the
  pipeline report and tests read;
* ``OUT/tensorboard/`` - a ``torch.utils.tensorboard`` event file with one scalar per metric (tag = the
  metric's name, global step = ``step``); on by default, ``--no-tensorboard`` turns it off.  A resumed
  run opens its writer with ``purge_step`` = its first logged step, so TensorBoard drops the steps the
  killed run had logged past the checkpoint, as :func:`~vq_core.metrics_log.trim_metrics` does for the
  JSON log;
* W&B - only with ``--wandb`` (``wandb`` is an optional install; asking for it without the package is a
  one-line error, never a silent skip).

Only rank 0 writes (``enabled=False`` elsewhere).  The switches are fields of each trainer's config
(:class:`TrackingFields`), so a config file, ``--train-set tensorboard=false`` and the flags agree.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import Field

from vq_core.config import StrictConfig
from vq_core.metrics_log import append_metrics

METRICS_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"
F = TypeVar("F", bound=Callable[..., Any])


class TrackingFields(StrictConfig):
    """The tracking switches every trainer config inherits (plain fields: ``--train-set wandb=true`` works)."""

    tensorboard: bool = Field(default=True, description="write TensorBoard event files into OUT/tensorboard (rank 0)")
    wandb: bool = Field(default=False, description="also log to Weights & Biases (needs `pip install wandb`)")
    wandb_project: str = Field(default="vq", description="W&B project name (with wandb=true)")


def wandb_missing_error() -> str:
    return "--wandb needs the wandb package, which is not installed; `pip install wandb` or drop --wandb"


def check_wandb_installed() -> None:
    """Raise :class:`RuntimeError` (one line) when W&B is asked for but not installed."""
    if importlib.util.find_spec("wandb") is None:
        raise RuntimeError(wandb_missing_error())


class MetricsLogger:
    """Append each logged step to ``metrics.jsonl`` and mirror it to TensorBoard / W&B.

    Writers open lazily at the first :meth:`log`, so constructing one on every rank (or for a run that
    logs nothing) creates no files.  ``run_config`` (plain JSON data) is handed to W&B as the run's config.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        options: TrackingFields | None = None,
        *,
        enabled: bool = True,
        run_config: dict[str, Any] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.options = options if options is not None else TrackingFields()
        self.enabled = enabled
        self.run_config = run_config
        self._tensorboard: Any = None
        self._wandb: Any = None
        if enabled and self.options.wandb:
            check_wandb_installed()

    @property
    def metrics_path(self) -> Path:
        return self.directory / METRICS_FILE

    @property
    def tensorboard_dir(self) -> Path:
        return self.directory / TENSORBOARD_DIR

    def log(self, metrics: dict[str, Any]) -> None:
        """Write one step's metrics (a dict with a ``step`` entry) to every enabled sink."""
        if not self.enabled:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        append_metrics(self.metrics_path, metrics)
        step = int(metrics["step"])
        scalars = {k: float(v) for k, v in metrics.items() if k != "step" and _is_number(v)}
        if self.options.tensorboard:
            writer = self._tensorboard_writer(step)
            for name, value in scalars.items():
                writer.add_scalar(name, value, global_step=step)
            writer.flush()  # a killed run keeps every step it logged
        if self.options.wandb:
            self._wandb_run().log(scalars, step=step)

    def close(self) -> None:
        """Close the writers (the files are flushed after every step anyway)."""
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None

    def _tensorboard_writer(self, first_step: int) -> Any:
        if self._tensorboard is None:
            from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only when used

            self._tensorboard = SummaryWriter(str(self.tensorboard_dir), purge_step=first_step)
        return self._tensorboard

    def _wandb_run(self) -> Any:
        if self._wandb is None:
            import wandb

            self._wandb = wandb.init(project=self.options.wandb_project, dir=str(self.directory), config=self.run_config)
        return self._wandb


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))


def tracking_options(command: F) -> F:
    """Add ``--tensorboard/--no-tensorboard`` and ``--wandb`` to a training command.

    Both default to None ("the config's value": TensorBoard on, W&B off), so a flag overrides only what it names.
    """
    command = click.option(
        "--wandb/--no-wandb", "wandb", default=None, help="also log metrics to Weights & Biases (needs `pip install wandb`)"
    )(command)
    command = click.option(
        "--tensorboard/--no-tensorboard",
        "tensorboard",
        default=None,
        help="TensorBoard event files in OUT/tensorboard (default: on)",
    )(command)
    return command


def tracking_overrides(tensorboard: bool | None, wandb: bool | None) -> dict[str, Any]:
    """The train-config overrides the tracking flags ask for; ``--wandb`` without wandb installed is a usage error."""
    out: dict[str, Any] = {}
    if tensorboard is not None:
        out["tensorboard"] = tensorboard
    if wandb is not None:
        if wandb:
            try:
                check_wandb_installed()
            except RuntimeError as err:
                raise click.UsageError(str(err)) from err
        out["wandb"] = wandb
    return out
