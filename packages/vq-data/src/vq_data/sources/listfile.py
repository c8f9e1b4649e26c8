"""A list file of ``path label`` lines (paths relative to the list file, or absolute)."""

from __future__ import annotations

import os
from pathlib import Path

from vq_data.imageio import DEFAULT_MAX_PIXELS
from vq_data.sources.base import ImageRecord, ImageSource, SourceError, file_record


class ListSource(ImageSource):
    """Images named by a text file, one ``path label`` per line, in file order.

    The label is the last whitespace-separated field (so paths may hold spaces) and must be a
    non-negative integer; blank lines and lines starting with ``#`` are ignored.  The number of
    classes is ``1 + max(label)``; class names are not known.
    """

    kind = "list"

    def __init__(
        self, list_file: str | os.PathLike[str], *, split: str | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
    ) -> None:
        self.list_file = Path(list_file)
        self.max_pixels = max_pixels
        if not self.list_file.is_file():
            raise SourceError(f"list file {self.list_file} does not exist")
        self._entries = self._parse()
        if not self._entries:
            raise SourceError(f"list file {self.list_file} names no images (expected 'path label' lines)")
        num_classes = 1 + max(label for _, _, label in self._entries)
        super().__init__(self.list_file.stem, str(self.list_file.resolve()), [str(i) for i in range(num_classes)], split)

    def _parse(self) -> list[tuple[str, Path, int]]:
        base = self.list_file.parent
        entries = []
        for number, line in enumerate(self.list_file.read_text(encoding="utf-8").splitlines(), start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            parts = text.rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].isdigit():
                raise SourceError(
                    f"{self.list_file}:{number}: expected 'path label' with an integer label >= 0, got {text!r}"
                )
            name, label = parts[0], int(parts[1])
            path = Path(name) if Path(name).is_absolute() else base / name
            entries.append((name, path, label))
        return entries

    def description(self) -> str:
        return f"list file, {len(self._entries)} 'path label' lines"

    def _list_records(self) -> list[ImageRecord]:
        return [file_record(path, name.lstrip("/"), label, max_pixels=self.max_pixels) for name, path, label in self._entries]
