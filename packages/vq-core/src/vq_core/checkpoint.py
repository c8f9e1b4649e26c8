"""Self-describing checkpoints.

A checkpoint holds the model family, its config (as plain JSON data), the weights and any training
state. Loading never needs the original config file, and a reader can name exactly what does not
match ("checkpoint X has codebook 1024 but manifest says 8192").
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel

from vq_core.config import config_hash
from vq_core.io import atomic_write_bytes

CHECKPOINT_FORMAT = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or of the wrong kind."""


@dataclass
class Checkpoint:
    """The contents of one checkpoint file."""

    family: str
    config: dict[str, Any]
    config_hash: str
    model: dict[str, torch.Tensor]
    step: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    family: str,
    config: BaseModel,
    model: dict[str, torch.Tensor],
    step: int = 0,
    state: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint; ``state`` carries optimizer/scheduler/EMA/discriminator state."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "family": family,
        "config": config.model_dump(mode="json"),
        "config_hash": config_hash(config),
        "model": model,
        "step": int(step),
        "state": state or {},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def load_checkpoint(
    path: str | os.PathLike[str], *, family: str | None = None, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, checking its family when given."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:  # torch raises many types for truncated/corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}: {err})") from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a vq checkpoint (format {CHECKPOINT_FORMAT}); convert foreign weights with `vq-tok convert`"
        )
    if family is not None and payload["family"] != family:
        raise CheckpointError(f"checkpoint {path} holds a '{payload['family']}' model, expected '{family}'")
    return Checkpoint(
        family=payload["family"],
        config=payload["config"],
        config_hash=payload["config_hash"],
        model=payload["model"],
        step=payload["step"],
        state=payload["state"],
        path=path,
    )
