"""Encoding of one sample's fields to the bytes stored in a webdataset tar, and back.

Field names follow the data contract: ``tokens.npy`` (int16/int32 array), ``cls`` (integer label),
``json`` (source id, crop/augment info) and image bytes under ``png``/``jpg``/``webp``.
Encoding is explicit (not left to webdataset's guesser) so the same sample always gives the same
bytes, which keeps single-process and Ray outputs identical.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import numpy as np

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp")
_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_\-/]+$")


class SampleError(ValueError):
    """A sample cannot be stored (bad key, unknown field) or read back (corrupt field)."""


def check_key(key: str) -> str:
    """Webdataset splits a member name at its first dot, so keys may hold no dots."""
    if not isinstance(key, str) or not key or not _KEY_PATTERN.match(key):
        raise SampleError(
            f"sample key {key!r} is invalid: use letters, digits, '_', '-' or '/', and no dots "
            "(webdataset splits names at the first dot)"
        )
    return key


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
