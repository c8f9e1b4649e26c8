"""Resumable, atomic writer of equal-sized webdataset shard sets with a manifest.

Each shard is assembled in memory, written under a temporary name, fsync'ed and renamed, and only
then recorded in a partial manifest (``complete: false``).  A killed job therefore leaves only whole,
hashed shards behind, and a re-run opens the same directory, checks the recorded shards and carries
on from ``num_done`` instead of starting over.

The writer deletes only what it can tell is its own: temp files of its atomic writes, and, when it
resumes its own partial manifest, shard files numbered after the last recorded one (a kill between
writing a shard and recording it; the Ray path writes ahead).  The partial manifest is saved before
the first shard, so that window is covered from the start.  Any other ``<prefix>-*.tar`` in the
folder belongs to someone else: the writer refuses to start unless ``overwrite`` is given.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import webdataset as wds

from vq_core import DatasetInfo, Manifest, ManifestError, ShardEntry, TokenizerInfo, atomic_write_bytes, file_sha256
from vq_core.manifest import MANIFEST_NAME
from vq_data.shards.codec import encode_sample

log = logging.getLogger(__name__)

# Fixed tar metadata so identical samples give byte-identical shards (reproducible hashes).
_TAR_MTIME = 0.0


class ShardSetWriter:
    """Write samples into ``<prefix>-000000.tar`` shards of ``samples_per_shard`` each.

    Use as a context manager.  On clean exit the last (possibly short) shard is flushed and the
    manifest is marked complete; on an exception only the already-finished shards are kept.
    When a partial manifest with the same dataset/tokenizer/shard size exists, the writer resumes:
    callers skip the first ``num_done`` samples of their (deterministic) input.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        *,
        kind: str,
        dataset: DatasetInfo,
        samples_per_shard: int,
        tool: str,
        tool_version: str,
        tokenizer: TokenizerInfo | None = None,
        prefix: str = "shard",
        overwrite: bool = False,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self._buffer: list[dict[str, Any]] = []
        self._manifest = Manifest(
            kind=kind,
            dataset=dataset,
            tokenizer=tokenizer,
            samples_per_shard=samples_per_shard,
            tool=tool,
            tool_version=tool_version,
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._remove_temp_files()
        existing = self.out_dir / MANIFEST_NAME
        resuming = existing.exists() and not overwrite
        if resuming:
            self._resume(Manifest.load(existing))
        if not self._manifest.complete:
            self._clear_unrecorded_shards(own_numbered=resuming, overwrite=overwrite)
            self._manifest.save(self.out_dir)

    @property
    def manifest(self) -> Manifest:
        return self._manifest

    @property
    def num_done(self) -> int:
        """Samples already durable on disk (skip this many inputs when resuming)."""
        return self._manifest.num_samples

    @property
    def complete(self) -> bool:
        return self._manifest.complete

    def _resume(self, previous: Manifest) -> None:
        mine = self._manifest
        for field in ("kind", "dataset", "tokenizer", "samples_per_shard"):
            if getattr(previous, field) != getattr(mine, field):
                raise ManifestError(
                    f"{self.out_dir / MANIFEST_NAME} was written for a different {field}; "
                    "use a new output directory or pass overwrite=True (--overwrite)"
                )
        for shard in previous.shards:
            path = self.out_dir / shard.name
            if not path.is_file() or file_sha256(path) != shard.sha256:
                raise ManifestError(
                    f"shard {path} is missing or does not match its sha256 in the manifest; "
                    "delete the directory to start over"
                )
        self._manifest = previous
        if previous.complete:
            log.info("%s is already complete (%d samples)", self.out_dir, previous.num_samples)
        else:
            log.info("resuming %s after %d samples", self.out_dir, previous.num_samples)

    def _remove_temp_files(self) -> None:
        """Temp files of atomic shard and manifest writes that a killed job never renamed."""
        for pattern in (f".{self.prefix}-*.tmp", f".{MANIFEST_NAME}.*.tmp"):
            for path in self.out_dir.glob(pattern):
                log.info("removing %s, left by a killed job", path)
                path.unlink(missing_ok=True)

    def _clear_unrecorded_shards(self, *, own_numbered: bool, overwrite: bool) -> None:
        """Delete unrecorded shards that are this job's (or all, with ``overwrite``); refuse on any other."""
        recorded = {s.name for s in self._manifest.shards}
        first_unrecorded = len(self._manifest.shards)
        foreign = []
        for path in sorted(self.out_dir.glob(f"{self.prefix}-*.tar")):
            if path.name in recorded:
                continue
            number = path.name[len(self.prefix) + 1 : -len(".tar")]
            own = own_numbered and len(number) == 6 and number.isdigit() and int(number) >= first_unrecorded
            if own or overwrite:
                log.info("removing %s (%s)", path, "not recorded by the partial run" if own else "--overwrite")
                path.unlink()
            else:
                foreign.append(path.name)
        if foreign:
            listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise ManifestError(
                f"{self.out_dir} already holds shard files this job did not write ({listed}); choose an empty "
                "output folder, or pass --overwrite (overwrite=True) to delete them"
            )

    def write(self, sample: dict[str, Any]) -> None:
        """Buffer one sample; a full buffer becomes a shard on disk."""
        if self._manifest.complete:
            raise ManifestError(f"{self.out_dir} is complete; cannot add samples")
        self._buffer.append(encode_sample(sample))
        if len(self._buffer) == self._manifest.samples_per_shard:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        name = f"{self.prefix}-{len(self._manifest.shards):06d}.tar"
        payload = io.BytesIO()
        with wds.TarWriter(payload, encoder=False, mtime=_TAR_MTIME) as tar:
            for sample in self._buffer:
                tar.write(sample)
        data = payload.getvalue()
        path = self.out_dir / name
        atomic_write_bytes(path, data)
        entry = ShardEntry(name=name, num_samples=len(self._buffer), sha256=file_sha256(path), size_bytes=len(data))
        self._manifest = self._manifest.model_copy(update={"shards": [*self._manifest.shards, entry]})
        self._manifest.save(self.out_dir)
        self._buffer = []

    def close(self) -> Manifest:
        """Flush the last shard and mark the manifest complete."""
        if not self._manifest.complete:
            self._flush()
            self._manifest = self._manifest.model_copy(update={"complete": True})
            self._manifest.save(self.out_dir)
        return self._manifest

    def __enter__(self) -> ShardSetWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
