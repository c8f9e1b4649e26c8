"""Image sources: folder, ImageNet-style, list file, the bundled demo photos and scikit-learn's digits."""

from __future__ import annotations

import os
from pathlib import Path

from vq_data.imageio import DEFAULT_MAX_PIXELS
from vq_data.names import SOURCE_KINDS, SourceKind
from vq_data.sources.base import ImageRecord, ImageSource, SourceError, key_from_path
from vq_data.sources.bundled import CLASSES as BUNDLED_CLASSES
from vq_data.sources.bundled import BundledSource, available_photos
from vq_data.sources.digits import CLASSES as DIGIT_CLASSES
from vq_data.sources.digits import DigitsSource, digits_split
from vq_data.sources.folder import FolderSource
from vq_data.sources.imagenet import ImageNetSource, read_synset_map, read_val_labels
from vq_data.sources.listfile import ListSource

NAMED_SOURCES = ("bundled", "digits")  # sources given by name, not by a path


def infer_kind(location: str | os.PathLike[str]) -> SourceKind:
    """Guess a source kind: ``bundled``/``digits`` by name, a file is a list, a root with train/ or val/ is ImageNet."""
    if str(location) in NAMED_SOURCES:
        return str(location)  # type: ignore[return-value]
    path = Path(location)
    if path.is_file():
        return "list"
    if (path / "train").is_dir() or (path / "val").is_dir():
        return "imagenet"
    return "folder"


def make_source(
    location: str | os.PathLike[str] | None,
    *,
    kind: SourceKind | None = None,
    split: str | None = None,
    crops_per_image: int = 0,
    seed: int = 0,
    synset_map: str | os.PathLike[str] | None = None,
    val_labels: str | os.PathLike[str] | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> ImageSource:
    """Build the source for ``location`` (a folder, ImageNet root, list file, ``"bundled"`` or ``"digits"``)."""
    kind = kind or infer_kind(location if location is not None else "bundled")
    if kind == "bundled":
        return BundledSource(crops_per_image=crops_per_image, seed=seed, split=split)
    if kind == "digits":
        return DigitsSource(split=split)
    if location is None:
        raise SourceError(f"a {kind} source needs a path")
    if kind == "folder":
        return FolderSource(location, split=split, max_pixels=max_pixels)
    if kind == "list":
        return ListSource(location, split=split, max_pixels=max_pixels)
    if kind == "imagenet":
        return ImageNetSource(
            location, split=split or "train", synset_map=synset_map, val_labels=val_labels, max_pixels=max_pixels
        )
    raise SourceError(f"unknown source kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}")


__all__ = [
    "BUNDLED_CLASSES",
    "DIGIT_CLASSES",
    "DigitsSource",
    "digits_split",
    "NAMED_SOURCES",
    "SOURCE_KINDS",
    "BundledSource",
    "FolderSource",
    "ImageNetSource",
    "ImageRecord",
    "ImageSource",
    "ListSource",
    "SourceError",
    "SourceKind",
    "available_photos",
    "infer_kind",
    "key_from_path",
    "make_source",
    "read_synset_map",
    "read_val_labels",
]
