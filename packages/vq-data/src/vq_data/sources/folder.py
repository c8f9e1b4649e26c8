"""A folder of images, labelled by their first-level sub-folder (``root/<class>/**/<image>``)."""

from __future__ import annotations

import os
from pathlib import Path

from vq_data.sources.base import ImageRecord, ImageSource, SourceError, file_record, list_image_files


class FolderSource(ImageSource):
    """Every image below ``root`` (recursive, sorted).  Classes are the sorted first-level sub-folders.

    A folder with images only at its top level is one class named after the folder; a mix of
    top-level images and class sub-folders is ambiguous and refused.
    """

    kind = "folder"

    def __init__(self, root: str | os.PathLike[str], *, split: str | None = None) -> None:
        self.root = Path(root)
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
        classes = sorted({f.relative_to(self.root).parts[0] for f in self._files}) if nested else [self.root.name]
        super().__init__(self.root.name, str(self.root.resolve()), classes, split)

    def description(self) -> str:
        return f"image folder, {len(self.class_names)} classes from sub-folder names"

    def _list_records(self) -> list[ImageRecord]:
        index = {name: i for i, name in enumerate(self.class_names)}
        records = []
        for path in self._files:
            relative = path.relative_to(self.root)
            label = index[relative.parts[0]] if len(relative.parts) > 1 else 0
            records.append(file_record(path, relative.as_posix(), label))
        return records
