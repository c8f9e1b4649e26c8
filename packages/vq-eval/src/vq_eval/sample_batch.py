"""ADM's image batch ``.npz`` (guided-diffusion ``evaluations/``): what LlamaGen, DiT and MAR evaluate.

A *sample batch* holds ``arr_0``, uint8 images (N, H, W, 3) in NHWC order, and optionally ``arr_1``,
their int class labels (what ``np.savez(path, images, labels)`` writes, as ADM's samplers do).  A
*reference batch* such as ``VIRTUAL_imagenet256_labeled.npz`` holds the same ``arr_0`` and may add
``mu``/``sigma`` (pool features) and ``mu_s``/``sigma_s`` (spatial features) computed by the TF graph;
when they are there, ADM's evaluator takes FID and sFID from them and uses the images only for
precision and recall.

``arr_0`` is streamed from the zip member in row batches, so a 50k x 256 x 256 batch (~10 GB) is
never loaded whole; a reader validates the header (dtype, rank, channels) before touching the data,
because a file it did not write may hold anything.
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vq_core import atomic_write_bytes

IMAGES_KEY = "arr_0"
LABELS_KEY = "arr_1"
STAT_KEYS = ("mu", "sigma", "mu_s", "sigma_s")


class SampleBatchError(ValueError):
    """An ``.npz`` is not an ADM image batch (missing ``arr_0``, wrong dtype or shape)."""


def write_sample_batch(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """Atomically write uint8 (N, H, W, 3) ``images`` (and int ``labels``) as ADM's ``arr_0`` (``arr_1``)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise SampleBatchError(f"sample batch {path}: images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    arrays = {IMAGES_KEY: images}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (images.shape[0],) or labels.dtype.kind not in "iu":
            raise SampleBatchError(f"sample batch {path}: labels must be {images.shape[0]} integers, got {labels.dtype} {labels.shape}")
        arrays[LABELS_KEY] = labels.astype(np.int64)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


@dataclass(frozen=True)
class SampleBatch:
    """An ADM ``.npz`` opened for streaming: ``num_images`` images of ``height`` x ``width``, which keys it holds."""

    path: Path
    num_images: int
    height: int
    width: int
    keys: frozenset[str]

    @property
    def has_statistics(self) -> bool:
        """True when the file carries ADM's stored ``mu``/``sigma`` (a reference batch)."""
        return {"mu", "sigma"} <= self.keys

    def labels(self) -> np.ndarray | None:
        if LABELS_KEY not in self.keys:
            return None
        with np.load(self.path, allow_pickle=False) as data:
            return np.asarray(data[LABELS_KEY])

    def iter_rows(self, start: int = 0, count: int | None = None, batch_size: int = 64) -> Iterator[np.ndarray]:
        """uint8 (b, H, W, 3) batches of rows ``[start, start + count)``, read from the zip stream in order."""
        count = self.num_images - start if count is None else count
        row_bytes = self.height * self.width * 3
        with zipfile.ZipFile(self.path) as archive, archive.open(f"{IMAGES_KEY}.npy") as stream:
            _read_header(stream, self.path)
            _skip(stream, start * row_bytes)
            remaining = count
            while remaining > 0:
                rows = min(batch_size, remaining)
                data = stream.read(rows * row_bytes)
                if len(data) != rows * row_bytes:
                    raise SampleBatchError(f"sample batch {self.path}: arr_0 ends early (truncated file)")
                yield np.frombuffer(data, dtype=np.uint8).reshape(rows, self.height, self.width, 3)
                remaining -= rows


def _read_header(stream: io.BufferedIOBase, path: Path) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(stream)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(stream)
    raise SampleBatchError(f"sample batch {path}: unsupported .npy version {version} for arr_0")


def _skip(stream: io.BufferedIOBase, size: int) -> None:
    """Advance a (possibly compressed, unseekable) zip member by ``size`` bytes."""
    while size > 0:
        chunk = stream.read(min(size, 1 << 24))
        if not chunk:
            raise SampleBatchError("sample batch ends early (truncated file)")
        size -= len(chunk)


def open_sample_batch(path: str | os.PathLike[str]) -> SampleBatch:
    """Open ``path`` and validate its ``arr_0`` header: uint8, (N, H, W, 3), C order."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            keys = frozenset(name.removesuffix(".npy") for name in archive.namelist())
            if IMAGES_KEY not in keys:
                raise SampleBatchError(
                    f"{path} has no arr_0 images (keys: {sorted(keys)}); an ADM sample batch stores uint8 (N, H, W, 3) as arr_0"
                )
            with archive.open(f"{IMAGES_KEY}.npy") as stream:
                shape, fortran, dtype = _read_header(stream, path)
    except (zipfile.BadZipFile, OSError) as err:
        raise SampleBatchError(f"{path} is not a readable .npz: {err}") from err
    if dtype != np.uint8 or len(shape) != 4 or shape[-1] != 3 or fortran:
        raise SampleBatchError(
            f"{path}: arr_0 is {dtype} {shape}{' (Fortran order)' if fortran else ''}; ADM batches hold uint8 (N, H, W, 3) NHWC images"
        )
    if shape[0] == 0:
        raise SampleBatchError(f"{path}: arr_0 holds no images")
    return SampleBatch(path, int(shape[0]), int(shape[1]), int(shape[2]), keys)
