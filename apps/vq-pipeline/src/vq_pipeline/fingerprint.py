"""Fingerprints of the files a stage reads, so a replaced or grown input re-runs what depends on it.

A file (a tokenizer checkpoint, weights, a list file) is fingerprinted by its content (sha256: a
replaced checkpoint of the same name and size is caught).  A folder (an image folder, an ImageNet
root, a teacher's weight folder) by its listing: every file's path relative to the folder, its size
and its modification time - one ``stat`` per file instead of reading every image, which is what
make-like tools do; an added, removed, resized or rewritten image changes it.  Copying a source
folder without keeping mtimes therefore re-runs its stages: the safe direction.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vq_core import ConfigError, file_sha256


def _listing(root: Path) -> str:
    digest = hashlib.sha256()
    stack = [root]
    entries: list[tuple[str, int, int]] = []
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as scan:
            for entry in scan:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=True):
                    stat = entry.stat(follow_symlinks=True)
                    entries.append((Path(entry.path).relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns))
    for name, size, mtime in sorted(entries):
        digest.update(f"{name}\0{size}\0{mtime}\n".encode())
    return f"listing:{len(entries)}:{digest.hexdigest()[:32]}"


def path_fingerprint(path: str | os.PathLike[str], *, field: str) -> str:
    """Content hash of a file, listing hash of a folder; ``field`` (dotted config name) names a missing path."""
    resolved = Path(path).expanduser()
    if resolved.is_file():
        return f"sha256:{file_sha256(resolved)}"
    if resolved.is_dir():
        return _listing(resolved)
    raise ConfigError(f"{path} does not exist ({field}); fix the path in the pipeline config")


def teacher_path(spec: str | None) -> str | None:
    """The local weights a teacher spec such as ``clip-proj:/models/clip`` names (None: a built-in one)."""
    if spec is None or ":" not in spec:
        return None
    location = spec.partition(":")[2]
    return location if Path(location).expanduser().exists() else None
