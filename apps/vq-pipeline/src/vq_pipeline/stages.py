"""Resumable stages: each stage records a ``stage.json`` done-marker holding the hash of its settings.

A re-run skips every stage whose marker matches its current settings and redoes the first one that
changed (and, because later stages hash their inputs too, everything after it).  A stage that was
interrupted (``stage.started`` but no marker) keeps its files, so its trainer resumes from its own
checkpoints - unless its settings changed since: then, as for a finished stage with other settings,
its directory is emptied first, so no checkpoint of other settings is ever resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vq_core import atomic_write_text

log = logging.getLogger(__name__)
MARKER = "stage.json"
STARTED = "stage.started"


def settings_hash(settings: Any) -> str:
    """Hash of a stage's settings (JSON-able), including the hashes of the stages it reads from."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageResult:
    name: str
    directory: Path
    skipped: bool
    seconds: float
    outputs: dict[str, Any]
    hash: str


def run_stage(
    name: str,
    directory: Path,
    settings: Any,
    body: Callable[[Path, str], dict[str, Any]],
) -> StageResult:
    """Run ``body(directory, settings hash)`` unless a finished marker with the same settings hash exists."""
    digest = settings_hash(settings)
    marker, started = directory / MARKER, directory / STARTED
    if marker.is_file():
        done = json.loads(marker.read_text())
        if done.get("hash") == digest:
            log.info("stage %s: already complete in %s, skipping", name, directory)
            return StageResult(name, directory, True, 0.0, done["outputs"], digest)
    if directory.exists() and (marker.is_file() or (started.is_file() and started.read_text().strip() != digest)):
        log.info("stage %s: settings changed since the last run; redoing it from scratch", name)
        shutil.rmtree(directory)
    elif started.is_file():
        log.info("stage %s: resuming the interrupted run in %s", name, directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, digest + "\n")
    start = time.perf_counter()
    outputs = body(directory, digest)
    seconds = time.perf_counter() - start
    atomic_write_text(
        marker, json.dumps({"stage": name, "hash": digest, "seconds": seconds, "outputs": outputs}, indent=2, default=str)
    )
    log.info("stage %s: done in %.1fs", name, seconds)
    return StageResult(name, directory, False, seconds, outputs, digest)
