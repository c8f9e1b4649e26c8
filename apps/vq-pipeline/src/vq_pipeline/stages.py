"""Resumable stages: each stage records a ``stage.json`` done-marker holding the hash of its settings.

A re-run skips a stage only when its marker matches its current settings *and* every output file it
recorded is still there (shard sets: every shard of their manifest, at its recorded size); otherwise
the stage is redone.  Settings include fingerprints of the input files a stage reads
(:mod:`vq_pipeline.fingerprint`) and the identity of the stages it reads from.  That identity is
the settings hash plus an id drawn each time the stage completes, so a stage that was redone - for
changed settings, a replaced input or a deleted output - redoes everything downstream, even when its
settings are unchanged.

A stage that was interrupted (``stage.started`` but no marker) keeps its files, so its trainer resumes
from its own checkpoints - unless its settings changed since: then, as for a finished stage that is
redone, its directory is emptied first, so no checkpoint of other settings is ever resumed.

Output paths are stored relative to the run folder, so a run folder can be moved or copied and still
resumes; paths outside it (a given tokenizer checkpoint) stay absolute.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vq_core import MANIFEST_NAME, Manifest, ManifestError, atomic_write_text

log = logging.getLogger(__name__)
MARKER = "stage.json"
STARTED = "stage.started"


def settings_hash(settings: Any) -> str:
    """Hash of a stage's settings (JSON-able), including the hashes of the stages it reads from."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class StageResult:
    """A finished (or skipped) stage; ``hash`` is its identity for the stages that read from it."""

    name: str
    directory: Path
    skipped: bool
    seconds: float
    outputs: dict[str, Any]
    hash: str


def missing_output(path: Path) -> str | None:
    """Why a recorded output is not usable (None: it is): gone, or a shard set missing a shard."""
    if not path.exists():
        return f"{path} is missing"
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        try:
            manifest = Manifest.load(path)
        except ManifestError as err:
            return str(err)
        for shard in manifest.shards:
            file = path / shard.name
            if not file.is_file() or file.stat().st_size != shard.size_bytes:
                return f"shard {file} is missing or of another size than its manifest records"
    return None


def _store(outputs: dict[str, Any], root: Path) -> tuple[dict[str, Any], list[str]]:
    """JSON form of ``outputs``: ``Path`` values relative to ``root`` (absolute when outside it), and their keys."""
    stored, paths = {}, []
    for key, value in outputs.items():
        if isinstance(value, Path):
            resolved = value.resolve()
            stored[key] = str(resolved.relative_to(root)) if resolved.is_relative_to(root) else str(resolved)
            paths.append(key)
        else:
            stored[key] = value
    return stored, paths


def _restore(done: dict[str, Any], root: Path) -> dict[str, Any]:
    """The outputs of a marker with its recorded paths resolved against ``root``."""
    outputs = dict(done["outputs"])
    for key in done.get("paths", []):
        outputs[key] = root / outputs[key]  # an absolute stored path stays as it is
    return outputs


def _reusable(name: str, marker: Path, digest: str, root: Path) -> dict[str, Any] | None:
    """The marker's content when it finished ``digest`` and all its outputs are there, else None."""
    if not marker.is_file():
        return None
    try:
        done = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        log.info("stage %s: unreadable marker %s; redoing the stage", name, marker)
        return None
    if done.get("hash") != digest or "id" not in done:
        return None
    outputs = _restore(done, root)
    for key in done.get("paths", []):
        problem = missing_output(outputs[key])
        if problem is not None:
            log.info("stage %s: output %r is not usable (%s); redoing the stage", name, key, problem)
            return None
    return {**done, "outputs": outputs}


def run_stage(
    name: str,
    directory: Path,
    settings: Any,
    body: Callable[[Path, str], dict[str, Any]],
    *,
    root: Path | None = None,
) -> StageResult:
    """Run ``body(directory, settings hash)`` unless a finished marker with the same settings hash and all
    its outputs exists.  ``body`` returns its outputs; ``Path`` values among them are checked on later
    runs and stored relative to ``root`` (the run folder; default: ``directory``'s parent)."""
    root = (root or directory.parent).resolve()
    digest = settings_hash(settings)
    marker, started = directory / MARKER, directory / STARTED
    done = _reusable(name, marker, digest, root)
    if done is not None:
        log.info("stage %s: already complete in %s, skipping", name, directory)
        return StageResult(name, directory, True, 0.0, done["outputs"], done["id"])
    if directory.exists() and (marker.is_file() or (started.is_file() and started.read_text().strip() != digest)):
        log.info("stage %s: settings, inputs or outputs changed since the last run; redoing it from scratch", name)
        shutil.rmtree(directory)
    elif started.is_file():
        log.info("stage %s: resuming the interrupted run in %s", name, directory)
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_text(started, digest + "\n")
    start = time.perf_counter()
    outputs = body(directory, digest)
    seconds = time.perf_counter() - start
    stored, paths = _store(outputs, root)
    identity = settings_hash({"settings": digest, "completed": uuid.uuid4().hex})
    record = {"stage": name, "hash": digest, "id": identity, "seconds": seconds, "outputs": stored, "paths": paths}
    atomic_write_text(marker, json.dumps(record, indent=2, default=str))
    log.info("stage %s: done in %.1fs", name, seconds)
    return StageResult(name, directory, False, seconds, _restore(record, root), identity)
