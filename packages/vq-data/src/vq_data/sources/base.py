"""What every image source yields: an ordered, deterministic list of records.

A record is cheap (a key, a label, a source id and a way to open the image); images are decoded
only when a record is opened.  Sources list their records up front in a fixed order because the
pack job resumes by skipping the first ``num_done`` records of that list.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from vq_core import DatasetInfo
from vq_data.imageio import DEFAULT_MAX_PIXELS, open_image
from vq_data.shards import check_key

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".ppm"})
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-/]")


class SourceError(ValueError):
    """A source cannot be listed: missing or empty folder, bad list line, unknown class, duplicate key."""


@dataclass(frozen=True)
class ImageRecord:
    """One image of a source: a dot-free key, its label, where it came from, and how to open it."""

    key: str
    label: int
    source_id: str
    opener: Callable[[], Image.Image] = field(repr=False, compare=False)
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def open(self) -> Image.Image:
        """Decode the image as PIL RGB; raises :class:`~vq_data.imageio.ImageDecodeError` naming the file."""
        return self.opener()


def key_from_path(relative: str) -> str:
    """A stable key for a relative path: every character outside ``[A-Za-z0-9_-/]`` becomes ``_`` and
    empty parts (``a//b``, a leading ``/``) are dropped.

    The extension is kept (as ``_jpg``) so ``a.jpg`` and ``a.png`` in one folder stay distinct.
    """
    return check_key("/".join(part for part in _KEY_UNSAFE.sub("_", relative).split("/") if part))


def file_record(
    path: Path, relative: str, label: int, *, max_pixels: int | None = DEFAULT_MAX_PIXELS, **meta: Any
) -> ImageRecord:
    """A record for an image file, keyed and identified by its path relative to the source root."""
    return ImageRecord(
        key=key_from_path(relative),
        label=label,
        source_id=relative,
        opener=lambda: open_image(path, max_pixels=max_pixels),
        meta=dict(meta),
    )


def list_image_files(directory: Path) -> list[Path]:
    """Every image file below ``directory``, recursively, in sorted (deterministic) order."""
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def check_unique_keys(records: Sequence[ImageRecord], where: str) -> None:
    """Two files mapping to one key would silently overwrite each other in a shard set."""
    seen: dict[str, str] = {}
    for record in records:
        if record.key in seen:
            raise SourceError(
                f"{where}: {seen[record.key]!r} and {record.source_id!r} both map to sample key {record.key!r}; "
                "rename one of them"
            )
        seen[record.key] = record.source_id


class ImageSource(ABC):
    """An image collection with a fixed record order and (optionally) named classes."""

    kind: str = ""

    def __init__(self, name: str, location: str, class_names: Sequence[str], split: str | None = None) -> None:
        self.name = name
        self.location = location
        self.class_names = list(class_names)
        self.split = split
        self._records: list[ImageRecord] | None = None

    @abstractmethod
    def _list_records(self) -> list[ImageRecord]:
        """List every record in the source's deterministic order (called once, then cached)."""

    def description(self) -> str:
        """One line on how records are made; stored in the manifest (must not vary between runs)."""
        return f"{self.kind} source"

    def records(self) -> list[ImageRecord]:
        """The deterministic record list (listed once); raises :class:`SourceError` when empty."""
        if self._records is None:
            records = self._list_records()
            if not records:
                raise SourceError(f"{self.location}: the {self.kind} source holds no images")
            check_unique_keys(records, self.location)
            self._records = records
        return self._records

    def __len__(self) -> int:
        return len(self.records())

    def dataset_info(self, *, image_size: int | None, transform: str) -> DatasetInfo:
        """How shard manifests describe this source."""
        return DatasetInfo(
            name=self.name,
            source=self.location,
            split=self.split,
            description=self.description(),
            num_classes=len(self.class_names),
            class_names=self.class_names,
            image_size=image_size,
            transform=transform,
        )
