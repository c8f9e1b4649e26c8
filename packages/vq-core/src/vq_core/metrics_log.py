"""``metrics.jsonl``: one JSON object per logged step, appended by a trainer's rank 0.

A run killed mid-write leaves a torn last line, and a run resumed from step k has already logged the
steps after k that it will log again.  :func:`trim_metrics` (called when a run starts or resumes)
keeps the whole lines up to the resume step and drops the rest, so the log reads as one run.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from vq_core.io import atomic_write_text

log = logging.getLogger(__name__)


def append_metrics(path: str | os.PathLike[str], metrics: dict[str, Any]) -> None:
    """Append one line (written in one call, so a kill leaves at most one torn line)."""
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(metrics) + "\n")


def trim_metrics(path: str | os.PathLike[str], step: int) -> None:
    """Keep the lines of steps <= ``step``; drop later ones and any torn or foreign line (saying so)."""
    path = Path(path)
    if not path.is_file():
        return
    kept, torn, later = [], 0, 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
            entry_step = float(entry["step"])
        except (ValueError, KeyError, TypeError):
            torn += 1
            continue
        if entry_step <= step:
            kept.append(line)
        else:
            later += 1
    if torn:
        log.warning("%s: dropped %d unreadable line(s) (a run killed while writing?)", path, torn)
    if torn or later:
        atomic_write_text(path, "".join(line + "\n" for line in kept))
