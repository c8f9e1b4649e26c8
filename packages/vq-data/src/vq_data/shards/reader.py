"""Reading shard sets back, sample by sample, with errors that name the broken file."""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from webdataset.tariterators import group_by_keys, tar_file_expander

from vq_core import MANIFEST_NAME, Manifest, ManifestError, file_sha256
from vq_data.shards.codec import SampleError, decode_field


class ShardError(RuntimeError):
    """A shard is missing, truncated, corrupt, or holds another number of samples than recorded."""


def _manifest_path(directory: str | os.PathLike[str]) -> Path:
    """``directory/manifest.json`` (so errors name the file even when the directory is missing)."""
    path = Path(directory)
    return path if path.is_file() else path / MANIFEST_NAME


def open_manifest(directory: str | os.PathLike[str], *, require_complete: bool = True) -> Manifest:
    """Load a shard set's manifest; refuse a partial one unless asked (its job is still running)."""
    manifest = Manifest.load(_manifest_path(directory))
    if require_complete and not manifest.complete:
        raise ManifestError(
            f"{Path(directory)} is incomplete ({manifest.num_samples} samples so far); "
            "re-run the job that writes it to resume it"
        )
    return manifest


def iter_shard(path: str | os.PathLike[str], *, expected: int | None = None) -> Iterator[dict[str, Any]]:
    """Yield decoded samples of one tar shard (image fields stay encoded bytes)."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"shard {path} does not exist")
    count = 0
    try:
        with open(path, "rb") as stream:
            for raw in group_by_keys(tar_file_expander([{"url": str(path), "stream": stream}])):
                key = raw["__key__"]
                sample: dict[str, Any] = {"__key__": key}
                for field, value in raw.items():
                    if not field.startswith("__"):
                        sample[field] = decode_field(field, value, where=f"{path}:{key}")
                count += 1
                yield sample
    except (tarfile.TarError, EOFError, OSError, ValueError) as err:
        if isinstance(err, SampleError):
            raise
        raise ShardError(f"shard {path} is corrupt or truncated ({type(err).__name__}: {err})") from err
    if expected is not None and count != expected:
        raise ShardError(f"shard {path} holds {count} samples but the manifest says {expected}")


def iter_samples(
    directory: str | os.PathLike[str],
    *,
    shards: Sequence[int] | None = None,
    manifest: Manifest | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every sample of a complete shard set in order (optionally only some shard indices)."""
    directory = Path(directory)
    manifest = manifest or open_manifest(directory)
    indices = range(len(manifest.shards)) if shards is None else shards
    for index in indices:
        entry = manifest.shards[index]
        yield from iter_shard(directory / entry.name, expected=entry.num_samples)


def verify_shards(directory: str | os.PathLike[str]) -> list[str]:
    """Re-hash and re-count every shard; return a list of problems (empty when all is well)."""
    manifest = Manifest.load(_manifest_path(directory))
    directory = _manifest_path(directory).parent
    problems: list[str] = []
    if not manifest.complete:
        problems.append(f"{directory}: manifest is not complete")
    for entry in manifest.shards:
        path = directory / entry.name
        if not path.is_file():
            problems.append(f"{path}: missing")
            continue
        if file_sha256(path) != entry.sha256:
            problems.append(f"{path}: sha256 does not match the manifest")
            continue
        try:
            for _ in iter_shard(path, expected=entry.num_samples):
                pass
        except (ShardError, SampleError) as err:
            problems.append(str(err))
    return problems
