"""Encoding of one sample's fields to the bytes stored in a webdataset tar, and back.

Field names follow the data contract: ``tokens.npy`` (int16/int32 array), ``cls`` (integer label),
``json`` (source id, crop/augment info) and image bytes under ``png``/``jpg``/``webp``.
Encoding is explicit (not left to webdataset's guesser) so the same sample always gives the same
bytes, which keeps single-process and Ray outputs identical.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-]+)*$")
MAX_KEY_LENGTH = 1000
MAX_KEY_SEGMENT = 200
"""Bounds on a key and on each of its ``/`` segments, so ``<key>.<field>`` fits any file system's names."""


class SampleError(ValueError):
    """A sample cannot be stored (bad key, unknown field) or read back (corrupt field)."""


def check_key(key: object) -> str:
    """A key names files when shards are decoded, so it must stay a relative path without dots.

    Allowed: letters, digits, ``_``, ``-`` and ``/`` between non-empty segments.  That rules out dots
    (webdataset splits member names at the first dot), hence ``..``; a leading ``/`` (absolute paths),
    NUL and backslashes; and over-long keys.
    """
    if not isinstance(key, str) or not key or not _KEY_PATTERN.match(key):
        raise SampleError(
            f"sample key {key!r} is invalid: use letters, digits, '_', '-' and '/' between non-empty parts, "
            "with no dots (webdataset splits names at the first dot) and no leading '/'"
        )
    longest = max(len(part) for part in key.split("/"))
    if len(key) > MAX_KEY_LENGTH or longest > MAX_KEY_SEGMENT:
        raise SampleError(
            f"sample key {key[:60]!r}... is too long ({len(key)} characters, longest part {longest}); "
            f"keys hold at most {MAX_KEY_LENGTH} characters and {MAX_KEY_SEGMENT} between slashes"
        )
    return key


def split_member_name(name: str) -> tuple[str, str]:
    """``dir/key.tokens.npy`` -> (``dir/key``, ``tokens.npy``): webdataset's split at the basename's first dot."""
    folder, slash, base = name.rpartition("/")
    stem, dot, field = base.partition(".")
    if not dot or not field:
        raise SampleError(f"member {name!r} is not '<key>.<field>'")
    return folder + slash + stem, field


def key_output_path(out_dir: str | os.PathLike[str], key: str, suffix: str) -> Path:
    """``out_dir/<key><suffix>``, refused unless it resolves inside ``out_dir`` (keys come from data others made;
    a symbolic link already inside ``out_dir`` must not lead the write elsewhere either)."""
    root = Path(out_dir).resolve()
    path = (root / f"{check_key(key)}{suffix}").resolve()
    if not path.is_relative_to(root) or path == root:
        raise SampleError(f"sample key {key!r} would write {path}, outside the output folder {root}; remove the link")
    return path


def encode_sample(sample: dict[str, Any]) -> dict[str, bytes | str]:
    """Turn a sample dict into the ``{"__key__": key, ext: bytes}`` form TarWriter stores."""
    if "__key__" not in sample:
        raise SampleError(f"sample has no '__key__' (fields: {sorted(sample)})")
    out: dict[str, bytes | str] = {"__key__": check_key(sample["__key__"])}
    for field, value in sample.items():
        if field == "__key__":
            continue
        if field.endswith("npy"):
            buffer = io.BytesIO()
            np.save(buffer, np.asarray(value), allow_pickle=False)
            out[field] = buffer.getvalue()
        elif field == "cls":
            out[field] = str(int(value)).encode("ascii")
        elif field == "json":
            out[field] = json.dumps(value, sort_keys=True).encode("utf-8")
        elif field in IMAGE_EXTENSIONS:
            if not isinstance(value, (bytes, bytearray)):
                raise SampleError(f"field {field!r} of {sample['__key__']} must hold encoded image bytes")
            out[field] = bytes(value)
        else:
            raise SampleError(f"unknown sample field {field!r} in {sample['__key__']}")
    return out


def decode_field(field: str, data: bytes, *, where: str) -> Any:
    """Decode one stored field; image bytes stay bytes (decoding is the loader's choice)."""
    try:
        if field.endswith("npy"):
            return np.load(io.BytesIO(data), allow_pickle=False)
        if field == "cls":
            return int(data.decode("ascii"))
        if field == "json":
            return json.loads(data.decode("utf-8"))
    except Exception as err:
        raise SampleError(f"{where}: field {field!r} is corrupt ({type(err).__name__}: {err})") from err
    return data
