"""A folder of images, labelled by their first-level sub-folder (``root/<class>/**/<image>``)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from vq_data.imageio import DEFAULT_MAX_PIXELS
from vq_data.sources.base import ImageRecord, ImageSource, SourceError, file_record, list_image_files

log = logging.getLogger(__name__)


class FolderSource(ImageSource):
    """Every image below ``root`` (recursive, sorted).  Classes are the sorted first-level sub-folders.

    A class sub-folder without images keeps its place (and so every later class keeps its id): the
    train and val folders of one dataset then agree on class ids even when a split lacks a class.
    Hidden sub-folders (``.cache``) are classes only if they hold images.  A folder with images only
    at its top level is one class named after the folder; a mix of top-level images and class
    sub-folders holding images is ambiguous and refused.  ``max_pixels`` caps an image's size
    (checked from its header before decoding).
    """

    kind = "folder"

    def __init__(
        self, root: str | os.PathLike[str], *, split: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> None:
        self.root = Path(root)
        self.max_pixels = max_pixels
        if not self.root.is_dir():
            raise SourceError(f"image folder {self.root} does not exist or is not a directory")
        self._files = list_image_files(self.root)
        if not self._files:
            raise SourceError(f"image folder {self.root} holds no image files (looked recursively for .png/.jpg/...)")
        top_level = [f for f in self._files if f.parent == self.root]
        nested = len(top_level) < len(self._files)
        if top_level and nested:
            raise SourceError(
                f"image folder {self.root} mixes top-level images (e.g. {top_level[0].name}) with class "
                "sub-folders; move every image into a class sub-folder"
            )
        if nested:
            with_images = {f.relative_to(self.root).parts[0] for f in self._files}
            folders = {p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")}
            classes = sorted(with_images | folders)
            for empty in sorted(folders - with_images):
                log.warning("class folder %s holds no images; it keeps its class id", self.root / empty)
        else:
            classes = [self.root.name]
        super().__init__(self.root.name, str(self.root.resolve()), classes, split)

    def description(self) -> str:
        return f"image folder, {len(self.class_names)} classes from sub-folder names"

    def _list_records(self) -> list[ImageRecord]:
        index = {name: i for i, name in enumerate(self.class_names)}
        records = []
        for path in self._files:
            relative = path.relative_to(self.root)
            label = index[relative.parts[0]] if len(relative.parts) > 1 else 0
            records.append(file_record(path, relative.as_posix(), label, max_pixels=self.max_pixels))
        return records
