"""Stopping a run that diverged, and naming the newest checkpoint that is worth resuming.

Every trainer checks its loss and gradients before the optimizer step and its weights before each
checkpoint write; on NaN/inf it raises :class:`TrainingDivergedError`.  The message names the newest
checkpoint whose tensors were *loaded and checked* to be finite (not merely the newest file: a file
written after a bad update would carry the damage) and what to change.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from vq_core.checkpoint import CheckpointError, load_checkpoint, nonfinite_tensors

log = logging.getLogger(__name__)


class TrainingDivergedError(RuntimeError):
    """Loss, gradients or weights became NaN/inf; the run stopped before they reached the weights or a file."""


def state_tensors(value: Any, prefix: str = "state") -> dict[str, torch.Tensor]:
    """Every tensor inside a nested training state (optimizer moments, EMA, discriminator), by its path."""
    found: dict[str, torch.Tensor] = {}
    if isinstance(value, torch.Tensor):
        found[prefix] = value
    elif isinstance(value, dict):
        for key, item in value.items():
            found.update(state_tensors(item, f"{prefix}[{key!r}]"))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found.update(state_tensors(item, f"{prefix}[{i}]"))
    return found


def checkpoint_is_finite(path: Path, *, family: str | None = None) -> bool:
    """Whether ``path`` loads and every floating tensor in its weights and state is finite."""
    try:
        ckpt = load_checkpoint(path, family=family)
    except CheckpointError as err:
        log.warning("skipping %s: %s", path, err)
        return False
    bad = nonfinite_tensors(ckpt.model) + nonfinite_tensors(state_tensors(ckpt.state))
    if bad:
        log.warning("skipping %s: non-finite tensors %s", path, bad[:5])
    return not bad


def newest_finite_checkpoint(newest_first: Iterable[Path], *, family: str | None = None) -> Path | None:
    """The first of ``newest_first`` that loads with all tensors finite, or None."""
    for path in newest_first:
        if path.is_file() and checkpoint_is_finite(path, family=family):
            return path
    return None


def divergence_error(
    step: int, what: str, newest: Path | None, fix: str, *, stopped: str = "before updating the weights"
) -> TrainingDivergedError:
    """The one-line error of a stopped run: what went non-finite, where to resume, what to change."""
    where = f"Newest finite checkpoint (verified): {newest}" if newest else "No finite checkpoint was written yet"
    return TrainingDivergedError(f"step {step}: {what}; stopped {stopped}. {where}; {fix}")
