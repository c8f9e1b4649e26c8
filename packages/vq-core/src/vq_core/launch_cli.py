"""The same launch flags on every training command (``vq-tok train*``, ``vq-ar train``):
``--ray-address auto --num-workers 8 --gpus`` turns a command into a Ray Train job of its loop.

Kept apart from :mod:`vq_core.launch` so the launcher itself does not depend on click.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click


F = TypeVar("F", bound=Callable[..., Any])

_OPTIONS = (
    click.option("--ray-address", default=None, help="run as a Ray Train job: 'local' (Ray started here) or 'auto' / an address (cluster)"),
    click.option("--num-workers", type=click.IntRange(min=1), default=1, show_default=True, help="Ray Train workers (DDP ranks)"),
    click.option("--gpus", is_flag=True, help="one GPU per Ray worker"),
    click.option("--max-failures", type=click.IntRange(min=0), default=2, show_default=True, help="Ray restarts after a worker dies"),
    click.option("--storage-path", default=None, help="where Ray keeps checkpoints (shared path or s3://...; default OUT/ray)"),
)


def launch_options(command: F) -> F:
    """Add ``--ray-address --num-workers --gpus --max-failures --storage-path`` to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def asks_for_ray(ray_address: str | None, num_workers: int, gpus: bool) -> bool:
    """Whether the launch flags ask for more than this process: commands keep their in-process path
    (which may be a torchrun rank) otherwise, and :func:`launch_command` refuses workers without Ray."""
    return ray_address is not None or num_workers > 1 or gpus


def launch_command(
    fn: Callable[[dict[str, Any], Any], Any],
    config: dict[str, Any],
    *,
    out: str,
    name: str,
    ray_address: str | None,
    num_workers: int,
    gpus: bool,
    max_failures: int,
    storage_path: str | None,
) -> dict[str, Any]:
    """Run ``fn(config, session)`` as the launch flags say; its final metrics."""
    from vq_core.launch import final_metrics, launch

    if ray_address is None and asks_for_ray(ray_address, num_workers, gpus):
        raise click.BadParameter(
            "several workers and --gpus run on Ray: add --ray-address local (or auto on a cluster)", param_hint="--num-workers"
        )
    storage = storage_path or str(Path(out).resolve() / "ray")
    result = launch(
        fn, config, ray_address=ray_address, num_workers=num_workers, use_gpu=gpus, storage_path=storage,
        name=name, max_failures=max_failures,
    )
    try:
        return final_metrics(result, name=name, storage=storage)
    except RuntimeError as err:
        raise click.ClickException(str(err)) from err
