"""Reading shard sets back, sample by sample, verifying each shard while it streams.

Every shard a manifest lists is checked as it is read, in the same pass: its members must be safe
(:mod:`vq_data.shards.tarstream`), and unless ``verify=False`` its size and sha256 must equal the
manifest's once the stream ends.  Its sample count is checked whenever it is read to its end.  A
mismatch raises :class:`ShardError` naming the shard, after the samples before it were yielded:
a consumer that must not act on unverified samples collects a shard's samples before using them.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from vq_core import MANIFEST_NAME, Manifest, ManifestError, ShardEntry, check_shard_name
from vq_data.shards.codec import SampleError, decode_field
from vq_data.shards.tarstream import HashingReader, ShardError, iter_raw_samples

NO_VERIFY_HINT = "pass --no-verify (verify=False) to read it unchecked"


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


def shard_path(directory: str | os.PathLike[str], entry: ShardEntry) -> Path:
    """Where ``entry`` lives: a plain file name inside the shard-set folder, or a :class:`ShardError`."""
    try:
        return Path(directory) / check_shard_name(entry.name)
    except ValueError as err:
        raise ShardError(f"manifest of {directory} lists an unsafe shard: {err}; do not use this shard set") from err


def iter_shard(
    path: str | os.PathLike[str],
    *,
    entry: ShardEntry | None = None,
    expected: int | None = None,
    verify: bool = True,
    start: int = 0,
    stop: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield decoded samples ``start <= i < stop`` of one tar shard (image fields stay encoded bytes).

    With the manifest ``entry`` and ``verify`` the whole file is read and its size and sha256 compared
    at the end (samples outside the range are parsed, not decoded); without, reading stops after ``stop``.
    ``expected`` (or ``entry.num_samples``) is compared with the count whenever the shard is read to its end.
    """
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"shard {path} does not exist; restore it or re-create the shard set")
    if entry is not None:
        expected = entry.num_samples
    check = verify and entry is not None
    count, problem, to_end = 0, None, True
    with open(path, "rb") as raw:
        stream = HashingReader(raw)
        wanted = lambda i: start <= i and (stop is None or i < stop)  # noqa: E731
        samples = iter_raw_samples(stream, str(path), wanted=wanted, max_member=entry.size_bytes if check else None)
        try:
            for index, key, fields in samples:
                count = index + 1
                if fields is not None:
                    where = f"{path}:{key}"
                    yield {"__key__": key, **{f: decode_field(f, value, where=where) for f, value in fields.items()}}
                if stop is not None and count >= stop and not check:
                    to_end = False  # nothing more is wanted and nothing is verified: stop reading here
                    break
        except (tarfile.TarError, EOFError, OSError, SampleError, ShardError) as err:
            problem = err
        if check:
            assert entry is not None
            _check_hash(stream, path, entry, problem)
    if problem is not None:
        if isinstance(problem, (ShardError, SampleError)):
            raise problem
        raise ShardError(f"shard {path} is corrupt or truncated ({type(problem).__name__}: {problem})") from problem
    if to_end and expected is not None and count != expected:
        raise ShardError(f"shard {path} holds {count} samples but the manifest says {expected}; re-create the shard set")


def _check_hash(stream: HashingReader, path: Path, entry: ShardEntry, problem: BaseException | None) -> None:
    """Hash the rest of the file and compare size and sha256 with the manifest; a mismatch explains any
    parse ``problem`` met on the way (a changed file), so it is reported first."""
    try:
        stream.drain()
    except OSError as err:
        raise ShardError(f"shard {path} cannot be read to its end ({err})") from err
    actual = stream.hexdigest()
    if stream.size != entry.size_bytes or actual != entry.sha256:
        found = f" (while reading: {problem})" if problem is not None else ""
        raise ShardError(
            f"shard {path} does not match its manifest (sha256 {actual[:12]}..., {stream.size} bytes; manifest: "
            f"{entry.sha256[:12]}..., {entry.size_bytes} bytes){found}: it changed after it was written; restore or "
            f"re-create it, or {NO_VERIFY_HINT}"
        ) from problem


def iter_samples(
    directory: str | os.PathLike[str],
    *,
    shards: Sequence[int] | None = None,
    manifest: Manifest | None = None,
    verify: bool = True,
    limit: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield every sample of a complete shard set in order (optionally only some shard indices, or the
    first ``limit`` samples: the shard holding the last one is still read to its end when verifying)."""
    directory = Path(directory)
    manifest = manifest or open_manifest(directory)
    indices = range(len(manifest.shards)) if shards is None else shards
    left = limit
    for index in indices:
        if left is not None and left <= 0:
            return
        entry = manifest.shards[index]
        stop = None if left is None or left >= entry.num_samples else left
        yield from iter_shard(shard_path(directory, entry), entry=entry, verify=verify, stop=stop)
        if left is not None:
            left -= entry.num_samples


def verify_shards(directory: str | os.PathLike[str]) -> list[str]:
    """Re-hash and re-count every shard in one pass each; return a list of problems (empty when all is well)."""
    manifest = Manifest.load(_manifest_path(directory))
    directory = _manifest_path(directory).parent
    problems: list[str] = []
    if not manifest.complete:
        problems.append(f"{directory}: manifest is not complete")
    for entry in manifest.shards:
        try:
            for _ in iter_shard(shard_path(directory, entry), entry=entry):
                pass
        except (ShardError, SampleError) as err:
            problems.append(str(err))
    return problems
