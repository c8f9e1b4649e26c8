"""``vq-core checkpoint upgrade``: rewrite a pre-safetensors (``torch.save``, format 1) vq checkpoint.

Format 1 stored ``{"format": 1, "family", "config", "config_hash", "model", "step", "state"}`` with
``torch.save``.  The old file is read like any foreign pickle (:func:`load_foreign_checkpoint`: the
weights-only unpickler plus its allowlist, or everything under ``trust_pickle``) and written again
as a safetensors checkpoint with the same family, config, config hash, step, weights and state.
"""

from __future__ import annotations

import os
from pathlib import Path

from vq_core.checkpoint import CheckpointError, load_checkpoint, looks_like_safetensors, write_checkpoint
from vq_core.foreign_checkpoint import load_foreign_checkpoint

LEGACY_FORMAT = 1
_LEGACY_KEYS = ("family", "config", "config_hash", "model", "step", "state")


def upgrade_checkpoint(old: str | os.PathLike[str], new: str | os.PathLike[str], *, trust_pickle: bool = False) -> Path:
    """Convert the format-1 checkpoint ``old`` into a safetensors checkpoint at ``new``; returns ``new``."""
    old, new = Path(old), Path(new)
    if old.resolve() == new.resolve():
        raise CheckpointError(f"upgrade {old}: NEW must be another file than OLD (OLD is kept until NEW loads)")
    if not old.is_file():
        raise CheckpointError(f"checkpoint {old} does not exist")
    if looks_like_safetensors(old):
        raise CheckpointError(f"checkpoint {old} is already a safetensors file; nothing to upgrade")
    payload = load_foreign_checkpoint(old, trust_pickle=trust_pickle)
    if not isinstance(payload, dict) or payload.get("format") != LEGACY_FORMAT or any(k not in payload for k in _LEGACY_KEYS):
        raise CheckpointError(
            f"{old} is not a format-{LEGACY_FORMAT} vq checkpoint; convert published releases with `vq-tok convert`"
        )
    write_checkpoint(
        new,
        family=str(payload["family"]),
        config=payload["config"],
        config_hash=str(payload["config_hash"]),
        model=dict(payload["model"]),
        step=int(payload["step"]),
        state=dict(payload["state"] or {}),
    )
    load_checkpoint(new)  # what was written reads back
    return new
