"""Step checkpoints of a training run: naming, finding the latest, pruning old ones.

Files are ``step_<8 digits>.safetensors`` written atomically by :func:`vq_tokenizers.save_tokenizer`, so any
file that matches the pattern is whole; ``latest_checkpoint`` is simply the highest step.
"""

from __future__ import annotations

import re
from pathlib import Path

_STEP_FILE = re.compile(r"^step_(\d{8})\.safetensors$")
FINAL_NAME = "tokenizer.safetensors"


def step_checkpoint_path(directory: Path, step: int) -> Path:
    return directory / f"step_{step:08d}.safetensors"


def step_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(step, path) of every step checkpoint in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_FILE.match(p.name))]
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    found = step_checkpoints(Path(directory))
    return found[-1][1] if found else None


def prune_checkpoints(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` step checkpoints."""
    for _, path in step_checkpoints(directory)[:-keep]:
        path.unlink(missing_ok=True)
