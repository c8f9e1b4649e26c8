"""ImageNet-style layouts: ``train/<wnid>/*.JPEG`` and ``val/`` in class folders or flat with a label file.

Class indices follow the synset map (``LOC_synset_mapping.txt``: ``n01440764 tench, Tinca tinca`` per
line, in file order, which is the sorted-wnid order every ImageNet model uses); without a map they
are the sorted class folder names.  A flat ``val/`` folder is labelled by the Kaggle
``LOC_val_solution.csv`` (``ImageId,PredictionString`` whose first token is the wnid) or by a list of
``<file> <wnid or class index>`` lines.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from vq_data.imageio import DEFAULT_MAX_PIXELS
from vq_data.sources.base import ImageRecord, ImageSource, SourceError, file_record, list_image_files

SYNSET_MAP_NAME = "LOC_synset_mapping.txt"
VAL_SOLUTION_NAME = "LOC_val_solution.csv"
_SEARCH_PARENTS = 3  # Kaggle keeps the LOC_* files three levels above ILSVRC/Data/CLS-LOC


def _find_upwards(root: Path, name: str) -> Path | None:
    """Look for ``name`` in ``root`` and a few of its parents (the Kaggle layout nests the images)."""
    for directory in [root, *list(root.resolve().parents)[:_SEARCH_PARENTS]]:
        if (directory / name).is_file():
            return directory / name
    return None


def read_synset_map(path: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Parse a synset map into (wnids, human-readable first names), in file order."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"synset map {path} does not exist")
    wnids, names = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        wnid, _, words = line.strip().partition(" ")
        if not (wnid.startswith("n") and wnid[1:].isdigit()):
            raise SourceError(f"{path}:{number}: expected 'n01440764 tench, Tinca tinca', got {line.strip()!r}")
        wnids.append(wnid)
        names.append(words.split(",")[0].strip() or wnid)
    if len(set(wnids)) != len(wnids):
        raise SourceError(f"synset map {path} lists a wnid twice")
    return wnids, names


def read_val_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    """Map image stem -> wnid or class index (as text) from a Kaggle CSV or a ``<file> <label>`` list."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"validation label file {path} does not exist")
    labels: dict[str, str] = {}
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not {"ImageId", "PredictionString"} <= set(reader.fieldnames):
                raise SourceError(f"{path}: expected the columns ImageId,PredictionString (Kaggle LOC_val_solution.csv)")
            for row in reader:
                labels[row["ImageId"]] = row["PredictionString"].split()[0]
        return labels
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise SourceError(
                f"{path}:{number}: expected '<file> <wnid or class index>', got {line.strip()!r} (a devkit "
                "ground-truth file of bare ILSVRC2012_IDs needs meta.mat; convert it to '<file> <wnid>' lines)"
            )
        labels[Path(parts[0]).stem] = parts[1]
    return labels


class ImageNetSource(ImageSource):
    """One split (``train``, ``val``, ...) of an ImageNet-style root folder."""

    kind = "imagenet"

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        split: str = "train",
        synset_map: str | os.PathLike[str] | None = None,
        val_labels: str | os.PathLike[str] | None = None,
        max_pixels: int | None = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.root = Path(root)
        self.max_pixels = max_pixels
        self.split_dir = self.root / split
        if not self.split_dir.is_dir():
            raise SourceError(f"ImageNet root {self.root} has no '{split}' folder (expected {self.split_dir})")
        self._files = list_image_files(self.split_dir)
        if not self._files:
            raise SourceError(f"ImageNet split folder {self.split_dir} holds no images")
        self._flat = all(f.parent == self.split_dir for f in self._files)
        map_path = Path(synset_map) if synset_map is not None else _find_upwards(self.root, SYNSET_MAP_NAME)
        self._labels_path: Path | None = None
        self._val_labels: dict[str, str] = {}
        if self._flat:
            self._labels_path = Path(val_labels) if val_labels is not None else _find_upwards(self.root, VAL_SOLUTION_NAME)
            if self._labels_path is None:
                raise SourceError(
                    f"{self.split_dir} holds images without class folders and no {VAL_SOLUTION_NAME} was found "
                    f"in {self.root} or its parents; pass the label file (--val-labels)"
                )
            self._val_labels = read_val_labels(self._labels_path)
        if map_path is not None:
            self.wnids, names = read_synset_map(map_path)
        else:
            self.wnids = self._wnids_without_map()
            names = list(self.wnids)
        self._map_path = map_path
        super().__init__(f"imagenet-{split}", str(self.root.resolve()), names, split)

    def _wnids_without_map(self) -> list[str]:
        """Class folders of ``train/`` (the usual reference), else of this split, else the val labels."""
        train = self.root / "train"
        if train.is_dir() and any(p.is_dir() for p in train.iterdir()):
            return sorted(p.name for p in train.iterdir() if p.is_dir())
        if not self._flat:  # every class folder, with images or not, so ids do not depend on which are empty
            return sorted(p.name for p in self.split_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if all(label.isdigit() for label in self._val_labels.values()):
            raise SourceError(
                f"{self._labels_path} gives class indices but there is no synset map or train/ folder to name "
                "the classes; pass --synset-map"
            )
        return sorted(set(self._val_labels.values()))

    def description(self) -> str:
        labels = f"labels from {self._labels_path.name}" if self._labels_path else "labels from class folders"
        classes = f"class order from {self._map_path.name}" if self._map_path else "class order = sorted wnids"
        return f"ImageNet-style '{self.split}' split, {labels}, {classes}"

    def _class_of(self, path: Path, index: dict[str, int]) -> tuple[int, str]:
        relative = path.relative_to(self.split_dir)
        if self._flat:
            assert self._labels_path is not None
            label = self._val_labels.get(path.stem)
            if label is None:
                raise SourceError(f"{path} has no entry in the validation labels {self._labels_path}")
            if label.isdigit():
                if int(label) >= len(self.wnids):
                    raise SourceError(
                        f"{self._labels_path}: class index {label} of {path.name} exceeds {len(self.wnids)} classes"
                    )
                return int(label), self.wnids[int(label)]
            wnid = label
        else:
            wnid = relative.parts[0]
        if wnid not in index:
            where = self._labels_path if self._flat else self.split_dir / wnid
            raise SourceError(f"{where}: wnid {wnid} (image {path}) is not in the synset map / class list")
        return index[wnid], wnid

    def _list_records(self) -> list[ImageRecord]:
        index = {wnid: i for i, wnid in enumerate(self.wnids)}
        records = []
        for path in self._files:
            label, wnid = self._class_of(path, index)
            records.append(
                file_record(path, path.relative_to(self.root).as_posix(), label, max_pixels=self.max_pixels, wnid=wnid)
            )
        return records
