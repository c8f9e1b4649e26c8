"""Image batches for evaluation from a shard set, an ADM ``.npz`` batch, `vq-ar sample` output or a folder.

What a path is read as, in order:

* an ``.npz`` file: an ADM sample/reference batch (``arr_0`` uint8 NHWC, see :mod:`vq_eval.sample_batch`);
* a directory with a ``manifest.json``: an image shard set, through vq-data's evaluation loader
  (resize shorter side + centre crop, bicubic);
* a directory with a ``sample.json`` naming its ``samples_npz`` (what ``vq-ar sample --out`` writes):
  that batch and nothing else, so the grid and token files beside it are never counted;
* any other directory: a folder of image files in sorted path order, so the same folder always gives
  the same statistics.

Folder and ``.npz`` images are used as they are unless ``image_size`` is given (then the same resize +
centre crop as shards), which matches pytorch-fid and ADM on generated samples.  Batches are float
(B, 3, H, W) in [-1, 1]; ``meta["resolution"]`` is the ``HxW`` the network is fed.

Under ``torch.distributed`` each rank reads its own contiguous share of the (first ``limit``) images
and no image twice, so statistics all-reduced over ranks equal those of a single process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vq_core import MANIFEST_NAME, file_sha256
from vq_eval.distributed import rank_and_world, rank_span
from vq_eval.sample_batch import SampleBatchError, open_sample_batch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SAMPLE_RECORD = "sample.json"  # written by `vq-ar sample`; names the sample batch beside it


class SourceError(ValueError):
    """An evaluation source is missing, empty, or needs an image size it was not given."""


@dataclass
class ImageBatches:
    """Re-iterable batches of a source plus the provenance recorded in reports and reference stats.

    ``num_images`` is the source's size; this rank (of ``world_size``) reads its share of the first
    ``limit`` of them.
    """

    path: Path
    kind: str  # "shards", "npz" or "folder"
    batch_size: int
    image_size: int | None
    num_images: int
    limit: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    world_size: int = 1
    verify: bool = True
    """Check image shards against their manifest's sha256 while they stream (``--no-verify`` turns it off)."""

    @property
    def total(self) -> int:
        """Images read over all ranks: the first ``limit`` of the source."""
        return self.num_images if self.limit is None else min(self.limit, self.num_images)

    def __iter__(self) -> Iterator[torch.Tensor]:
        if self.kind == "shards":
            yield from self._shard_batches()
        elif self.kind == "npz":
            yield from self._npz_batches()
        else:
            yield from self._folder_batches()

    def _shard_batches(self) -> Iterator[torch.Tensor]:
        """vq-data's evaluation loader gives rank ``r`` stored positions ``[r * share, (r + 1) * share)``
        with ``share = ceil(N / world)``, wrapping past the end; positions past ``total`` are dropped."""
        from vq_data import image_loader

        if self.image_size is None:
            raise SourceError(f"shard set {self.path}: an image size is needed to batch its images")
        share = -(-self.num_images // self.world_size)
        remaining = max(0, min(share, self.total - self.rank * share))
        if remaining == 0:
            return
        loader = image_loader(
            self.path, self.batch_size, self.image_size, train=False, rank=self.rank, world_size=self.world_size,
            verify=self.verify,
        )
        for images, _labels in loader:
            yield images[:remaining]
            remaining -= min(remaining, images.shape[0])
            if remaining == 0:
                return

    def _npz_batches(self) -> Iterator[torch.Tensor]:
        from PIL import Image

        from vq_data import resize_center_crop, to_tensor

        first, count = rank_span(self.total, self.rank, self.world_size)
        for rows in open_sample_batch(self.path).iter_rows(first, count, self.batch_size):
            if self.image_size is None:
                yield torch.from_numpy(rows.copy()).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
            else:
                yield torch.stack([to_tensor(resize_center_crop(Image.fromarray(row), self.image_size)) for row in rows])

    def _folder_batches(self) -> Iterator[torch.Tensor]:
        from vq_data import open_image, resize_center_crop, to_tensor

        first, count = rank_span(self.total, self.rank, self.world_size)
        files = list_images(self.path)[first : first + count]
        for start in range(0, len(files), self.batch_size):
            chunk = files[start : start + self.batch_size]
            images = [open_image(path) for path in chunk]
            if self.image_size is not None:
                images = [resize_center_crop(image, self.image_size) for image in images]
            sizes = {image.size for image in images}
            if len(sizes) > 1:
                raise SourceError(
                    f"images in {self.path} have different sizes ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))}); "
                    "pass --image-size to resize and centre-crop them"
                )
            yield torch.stack([to_tensor(image) for image in images])


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Image files under ``folder`` (recursively), sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def open_images(
    path: str | os.PathLike[str],
    *,
    batch_size: int = 50,
    image_size: int | None = None,
    limit: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    verify: bool = True,
) -> ImageBatches:
    """Batches of a shard set or image folder at ``path``; see the module docstring for the rules.

    ``rank``/``world_size`` default to the initialised ``torch.distributed`` group (else 0 and 1).
    """
    if (rank is None) != (world_size is None):
        raise ValueError("open_images: pass both rank and world_size, or neither")
    if rank is None or world_size is None:
        rank, world_size = rank_and_world()
    path = Path(path)
    if path.is_dir() and not (path / MANIFEST_NAME).is_file() and (path / SAMPLE_RECORD).is_file():
        path = _recorded_samples(path)
    if path.is_file() and path.suffix == ".npz":
        return _open_npz(path, batch_size, image_size, limit, rank, world_size)
    if not path.is_dir():
        raise SourceError(f"image source {path} is not a directory or .npz (expected an image shard set, ADM .npz batch or image folder)")
    if (path / MANIFEST_NAME).is_file():
        from vq_data import open_manifest

        manifest = open_manifest(path)
        if manifest.kind != "images":
            raise SourceError(f"{path} holds {manifest.kind} shards; evaluation needs image shards")
        size = image_size or manifest.dataset.image_size
        if size is None:
            raise SourceError(f"shard set {path} stores original-size images; pass --image-size to choose the evaluation size")
        meta = {
            "source": str(path),
            "source_kind": "shards",
            "dataset": manifest.dataset.name,
            "split": manifest.dataset.split,
            "manifest_sha256": file_sha256(path / MANIFEST_NAME),
            "transform": _transform(size),
            "resolution": f"{size}x{size}",
        }
        return ImageBatches(path, "shards", batch_size, size, manifest.num_samples, limit, meta, rank, world_size, verify)
    files = list_images(path)
    if not files:
        raise SourceError(f"image folder {path} contains no images ({', '.join(IMAGE_SUFFIXES)})")
    if image_size:
        resolution = f"{image_size}x{image_size}"
    else:
        from PIL import Image

        with Image.open(files[0]) as first:
            resolution = f"{first.height}x{first.width}"
    meta = {"source": str(path), "source_kind": "folder", "num_files": len(files), "transform": _transform(image_size),
            "resolution": resolution}  # fmt: skip
    return ImageBatches(path, "folder", batch_size, image_size, len(files), limit, meta, rank, world_size)


def _transform(image_size: int | None) -> str:
    return f"resize shorter side to {image_size} + centre crop (bicubic, antialiased)" if image_size else "none"


def _recorded_samples(directory: Path) -> Path:
    """The sample batch a `vq-ar sample` directory's ``sample.json`` names (``samples_npz``)."""
    record_path = directory / SAMPLE_RECORD
    try:
        record = json.loads(record_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SourceError(f"{record_path} is not readable JSON ({err}); pass the samples' .npz or image folder instead") from err
    name = record.get("samples_npz") if isinstance(record, dict) else None
    if not isinstance(name, str) or not name:
        raise SourceError(
            f"{record_path} names no samples_npz (tokens only, or written by an older vq-ar); "
            "decode the samples with `vq-ar sample` without --tokens-only, or pass an image folder"
        )
    target = (directory / name).resolve()
    if target.parent != directory.resolve():  # a record is data: it must not point outside its directory
        raise SourceError(f"{record_path}: samples_npz {name!r} must be a file name inside {directory}")
    if not target.is_file():
        raise SourceError(f"{record_path} names {name} but {target} does not exist; re-run `vq-ar sample`")
    return target


def _open_npz(
    path: Path, batch_size: int, image_size: int | None, limit: int | None, rank: int, world_size: int
) -> ImageBatches:
    try:
        batch = open_sample_batch(path)
    except SampleBatchError as err:
        raise SourceError(str(err)) from err
    resolution = f"{image_size}x{image_size}" if image_size else f"{batch.height}x{batch.width}"
    meta = {"source": str(path), "source_kind": "npz", "num_files": batch.num_images, "transform": _transform(image_size),
            "resolution": resolution}  # fmt: skip
    return ImageBatches(path, "npz", batch_size, image_size, batch.num_images, limit, meta, rank, world_size)
