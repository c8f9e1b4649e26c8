"""One pass over a tar shard that trusts nothing in it, with the file's sha256 computed on the way.

Shards travel between groups, so a shard is read as hostile input: every member must be a regular
file named ``<key>.<field>`` whose key passes :func:`~vq_data.shards.codec.check_key` (no absolute
path, no ``..``, no NUL), each key names one run of consecutive members, and no member may claim
more bytes than the whole shard the manifest records.  :class:`HashingReader` feeds every byte the
tar parser pulls into a running sha256, and :meth:`HashingReader.drain` hashes what is left after
the archive's end marker, so the whole-file hash is known when the stream ends, without a second read.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from vq_core import ManifestError
from vq_data.shards.codec import SampleError, check_key, split_member_name

_CHUNK = 1 << 20


class ShardError(ManifestError):
    """A shard is missing, truncated, corrupt, unsafe, or does not match what its manifest records.

    A :class:`~vq_core.ManifestError` (the shard set as a whole is wrong), so every CLI that reports
    manifest problems in one line reports shard problems the same way.
    """


class HashingReader:
    """A read-only wrapper of a binary file that hashes (and counts) every byte it hands out."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self.size = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._digest.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) the rest of the file: the padding after the tar end marker, or skipped samples."""
        while self.read(_CHUNK):
            pass

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _member_kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "symbolic link"
    if info.islnk():
        return "hard link"
    if info.isdir():
        return "directory"
    if info.ischr() or info.isblk():
        return "device"
    if info.isfifo():
        return "FIFO"
    return f"type {info.type!r}"


def _checked_key(info: tarfile.TarInfo, where: str, max_member: int | None, current: str) -> tuple[str, str]:
    """(key, field) of a member, refusing anything a writer of this project would never produce; a key equal
    to the ``current`` sample's was checked with that sample's first member."""
    if not info.isreg():
        raise ShardError(
            f"shard {where} holds a {_member_kind(info)} member {info.name!r}; shards may hold only regular files, "
            "so this one was not written by vq-data/vq-tok: do not use it"
        )
    try:
        key, field = split_member_name(info.name)
        if key != current or not key:
            check_key(key)
    except SampleError as err:
        raise ShardError(f"shard {where} holds member {info.name!r} with an unsafe name ({err}); do not use this shard") from err
    if max_member is not None and info.size > max_member:
        raise ShardError(
            f"shard {where}: member {info.name!r} claims {info.size} bytes, more than the whole shard "
            f"({max_member} bytes in the manifest); the shard is corrupt or crafted"
        )
    return key, field


def iter_raw_samples(
    stream: HashingReader, where: str, *, wanted: Callable[[int], bool], max_member: int | None = None
) -> Iterator[tuple[int, str, dict[str, bytes] | None]]:
    """``(index, key, {field: bytes})`` of each sample in file order; ``None`` fields for unwanted samples,
    whose bytes are read (and hashed) by the parser but not copied out."""
    index, key = -1, ""
    fields: dict[str, bytes] | None = None
    seen: set[str] = set()
    with tarfile.open(fileobj=stream, mode="r|*") as tar:  # type: ignore[call-overload]
        for info in tar:
            member_key, field = _checked_key(info, where, max_member, key)
            if member_key != key:
                if index >= 0:
                    yield index, key, fields
                if member_key in seen:
                    raise ShardError(f"shard {where} holds sample key {member_key!r} twice; the shard is corrupt or crafted")
                seen.add(member_key)
                index, key = index + 1, member_key
                fields = {} if wanted(index) else None
            if fields is not None:
                if field in fields:
                    raise ShardError(f"shard {where}: sample {key!r} holds field {field!r} twice")
                handle = tar.extractfile(info)
                assert handle is not None  # regular files always have contents
                fields[field] = handle.read()
    if index >= 0:
        yield index, key, fields
