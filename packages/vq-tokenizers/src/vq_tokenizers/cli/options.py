"""What every ``vq-tok`` command module shares: running a job, the train overrides, ``--trust-pickle``.

``--set key=value`` overrides are parsed by :func:`vq_core.overrides.parse_overrides`, the one syntax of
every ``vq-*`` CLI.

A module of its own so that command modules (``cli.vqkd``) need not import ``cli.commands``, which
imports them to register their commands.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from vq_core import asks_for_ray, launch_command
from vq_core.acceleration import speed_overrides
from vq_core.overrides import parse_overrides
from vq_core.tracking import tracking_overrides


def run_job(fn: Callable[..., dict[str, Any]], job: Any, *, name: str, launch_flags: dict[str, Any]) -> dict[str, Any]:
    """Run a training job in this process (also under torchrun), or as a Ray Train job when the
    ``vq_core.launch_options`` flags ask for Ray; its final metrics."""
    if not asks_for_ray(launch_flags["ray_address"], launch_flags["num_workers"], launch_flags["gpus"]):
        return fn(job)
    return launch_command(fn, job.model_dump(mode="json"), out=job.out, name=name, **launch_flags)


def train_overrides(
    train_set: tuple[str, ...],
    *,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    device: str | None,
    precision: str | None,
    compile_model: bool | None,
    tensorboard: bool | None,
    wandb: bool | None,
) -> dict[str, Any]:
    """The ``train`` overrides of a training command: ``--train-set`` pairs, then the speed and tracking
    flags, then ``--steps`` / ``--batch-size`` / ``--lr`` / ``--device`` where given (a flag wins over
    ``--train-set``), so every ``vq-tok train*`` command reads them the same way."""
    train = parse_overrides(train_set, "--train-set") | speed_overrides(precision, compile_model) | tracking_overrides(tensorboard, wandb)
    for key, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr), ("device", device)):
        if value is not None:
            train[key] = value
    return train


trust_pickle_option = click.option(
    "--trust-pickle",
    is_flag=True,
    help="unpickle the release in full if the weights-only loader refuses it (can run code: only for files you trust)",
)
"""``--trust-pickle`` of every ``vq-tok convert`` source: lifts :func:`vq_core.load_foreign_checkpoint`'s allowlist."""
