"""The data layer's names and limits that ``vq-data --help`` shows: kept free of imports, because the
modules that use them import PIL, webdataset and torch, which ``--help`` must not wait for."""

from __future__ import annotations

from typing import Literal

SourceKind = Literal["folder", "imagenet", "list", "bundled", "digits"]
SOURCE_KINDS: tuple[str, ...] = ("folder", "imagenet", "list", "bundled", "digits")

SKIPPED_NAME = "skipped.json"
"""File in a shard set's directory listing the images ``vq-data pack --skip-bad`` left out."""

DEFAULT_MAX_PIXELS = 89_478_485
"""PIL's ``Image.MAX_IMAGE_PIXELS`` default (a 1 GiB RGBA buffer / 4 / 3): above it PIL only warns, and a
108-Mpx photo then takes ~1.75 GB per decoding worker.  ``None`` lifts the cap (PIL still refuses above twice it)."""
