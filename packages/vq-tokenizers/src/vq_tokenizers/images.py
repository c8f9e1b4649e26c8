"""Where tokenizers read images from, in a fixed order: a vq-data image shard set, or any vq-data source
(an image folder, a list file, an ImageNet root, ``bundled``).

Both are presented as an ordered list of *chunks* (a shard, or a run of source records) with known
sizes, so a reader can start at any sample index (resume) by skipping whole chunks unread.  Keys are
the shard keys, or vq-data's stable dot-free keys of source files; decoding and the eval transform
(shorter side to ``size``, central square) are vq-data's, so tokens match what its loaders feed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from vq_core import MANIFEST_NAME, DatasetInfo
from vq_data import decode_image, iter_shard, make_source, open_manifest, resize_center_crop, shard_path, to_tensor

IMAGE_FIELDS = ("png", "jpg", "jpeg", "webp")
SOURCE_CHUNK = 256


@dataclass(frozen=True)
class ImageRecord:
    """One source image: a stable key, its label, metadata carried along, and how to decode it."""

    key: str
    opener: Callable[[], Image.Image] = field(repr=False, compare=False)
    label: int | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    def rgb(self) -> Image.Image:
        return self.opener()


class ImageSource:
    """An ordered image collection split into chunks of known size."""

    def __init__(self, path: str | os.PathLike[str], *, verify: bool = True) -> None:
        self.path = Path(path)
        self.verify = verify  # check image shards against their manifest's sha256 as they stream
        if (self.path / MANIFEST_NAME).is_file():
            self._manifest = open_manifest(self.path)
            if self._manifest.kind != "images":
                raise ValueError(f"{self.path} holds {self._manifest.kind!r} shards; expected an image shard set")
            self.chunk_sizes = [entry.num_samples for entry in self._manifest.shards]
            self._records: list[ImageRecord] = []
        else:
            self._manifest = None
            self._source = make_source(path)
            self._records = [
                ImageRecord(r.key, r.open, r.label, {"source": r.source_id, **r.meta}) for r in self._source.records()
            ]
            total = len(self._records)
            self.chunk_sizes = [min(SOURCE_CHUNK, total - i) for i in range(0, total, SOURCE_CHUNK)]

    def __len__(self) -> int:
        return sum(self.chunk_sizes)

    def dataset_info(self) -> DatasetInfo:
        """The description token shards made from this source carry in their manifest."""
        if self._manifest is not None:
            return self._manifest.dataset
        return self._source.dataset_info(image_size=None, transform="")

    def read_chunk(self, index: int) -> list[ImageRecord]:
        if self._manifest is None:
            return self._records[index * SOURCE_CHUNK : (index + 1) * SOURCE_CHUNK]
        entry = self._manifest.shards[index]
        path = shard_path(self.path, entry)
        return [_shard_record(sample, path) for sample in iter_shard(path, entry=entry, verify=self.verify)]

    def iter_records(self, start: int = 0) -> Iterator[ImageRecord]:
        """Every record in order, beginning at sample ``start`` (whole chunks before it are not read)."""
        offset = 0
        for index, size in enumerate(self.chunk_sizes):
            if offset + size <= start:
                offset += size
                continue
            yield from self.read_chunk(index)[max(start - offset, 0) :]
            offset += size


def _shard_record(sample: dict[str, Any], shard: Path) -> ImageRecord:
    key = sample["__key__"]
    field_name = next((f for f in IMAGE_FIELDS if f in sample), None)
    if field_name is None:
        raise ValueError(f"{shard}:{key} has no image field ({', '.join(IMAGE_FIELDS)})")
    data = sample[field_name]
    meta = sample["json"] if isinstance(sample.get("json"), dict) else {}
    return ImageRecord(key, lambda: decode_image(data, where=f"{shard}:{key}"), sample.get("cls"), {"source": key, **meta})


def center_crop(image: Image.Image, size: int) -> torch.Tensor:
    """vq-data's eval transform: shorter side to ``size``, the central square, (3, size, size) in [-1, 1]."""
    return to_tensor(resize_center_crop(image, size))
