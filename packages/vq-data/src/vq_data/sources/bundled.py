"""The demo data: real photos shipped inside the scikit-image and scikit-learn wheels.

Each photo has a class from a small label set (person, animal, ...).  With ``crops_per_image > 0``
every photo gives that many random square crops (deterministic in the seed), which turns 18 photos
into a few hundred training images: enough for the CPU demo to train a tokenizer and an AR model.
Only photos present in the installed wheels are used; nothing is ever downloaded (scikit-image
fetches some of its data on demand, so a photo whose file is absent is left out, not fetched).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vq_data.sources.base import ImageRecord, ImageSource, SourceError

CLASSES = ("person", "animal", "object", "vehicle", "space", "microscopy", "texture", "scene")


@dataclass(frozen=True)
class BundledPhoto:
    """A photo of a library wheel: its class and the files it needs locally."""

    name: str
    label: str
    library: str
    files: tuple[str, ...]
    function: str


def _skimage(name: str, label: str, *files: str, function: str | None = None) -> BundledPhoto:
    return BundledPhoto(name, label, "skimage", files, function or name)


PHOTOS: tuple[BundledPhoto, ...] = (
    _skimage("astronaut", "person", "astronaut.png"),
    _skimage("camera", "person", "camera.png"),
    _skimage("chelsea", "animal", "chelsea.png"),
    _skimage("coffee", "object", "coffee.png"),
    _skimage("coins", "object", "coins.png"),
    _skimage("clock", "object", "clock_motion.png"),
    _skimage("rocket", "vehicle", "rocket.jpg"),
    _skimage(
        "motorcycle", "vehicle", "motorcycle_left.png", "motorcycle_right.png", "motorcycle_disp.npz",
        function="stereo_motorcycle",
    ),
    _skimage("hubble_deep_field", "space", "hubble_deep_field.jpg"),
    _skimage("moon", "space", "moon.png"),
    _skimage("immunohistochemistry", "microscopy", "ihc.png"),
    _skimage("cell", "microscopy", "cell.png"),
    _skimage("retina", "microscopy", "retina.jpg"),
    _skimage("brick", "texture", "brick.png"),
    _skimage("grass", "texture", "grass.png"),
    _skimage("gravel", "texture", "gravel.png"),
    BundledPhoto("china", "scene", "sklearn", ("china.jpg",), "load_sample_images"),
    BundledPhoto("flower", "scene", "sklearn", ("flower.jpg",), "load_sample_images"),
)


def _skimage_loader(photo: BundledPhoto) -> Callable[[], np.ndarray] | None:
    try:
        import skimage.data
    except ImportError:  # a demo-only dependency: pip install 'vq-data[demo]'
        return None

    if not all((Path(skimage.data.data_dir) / f).is_file() for f in photo.files):
        return None
    function = getattr(skimage.data, photo.function, None)
    if function is None:
        return None
    if photo.function == "stereo_motorcycle":
        return lambda: function()[0]
    return function


def _sklearn_loader(photo: BundledPhoto) -> Callable[[], np.ndarray] | None:
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:  # a demo-only dependency: pip install 'vq-data[demo]'
        return None

    try:
        bunch = load_sample_images()
    except OSError:
        return None
    names = [Path(f).name for f in bunch.filenames]
    if photo.files[0] not in names:
        return None
    image = bunch.images[names.index(photo.files[0])]
    return lambda: image


def available_photos() -> list[str]:
    """Names of the bundled photos present offline in the installed wheels, in the fixed order."""
    return [p.name for p in PHOTOS if _loader(p) is not None]


def _loader(photo: BundledPhoto) -> Callable[[], np.ndarray] | None:
    return _skimage_loader(photo) if photo.library == "skimage" else _sklearn_loader(photo)


def _crop_box(size: tuple[int, int], rng: np.random.Generator, min_fraction: float) -> tuple[int, int, int, int]:
    width, height = size
    side = max(1, round(min(width, height) * rng.uniform(min_fraction, 1.0)))
    left = int(rng.integers(0, width - side + 1))
    top = int(rng.integers(0, height - side + 1))
    return left, top, left + side, top + side


class BundledSource(ImageSource):
    """Photos of scikit-image/scikit-learn, whole or as ``crops_per_image`` random square crops each."""

    kind = "bundled"

    def __init__(
        self,
        *,
        crops_per_image: int = 0,
        seed: int = 0,
        min_crop_fraction: float = 0.35,
        photos: Sequence[str] | None = None,
        split: str | None = None,
    ) -> None:
        if crops_per_image < 0:
            raise SourceError(f"crops_per_image must be >= 0 (0 keeps whole photos), got {crops_per_image}")
        if not 0 < min_crop_fraction <= 1:
            raise SourceError(f"min_crop_fraction must lie in (0, 1], got {min_crop_fraction}")
        known = {p.name: p for p in PHOTOS}
        unknown = sorted(set(photos or ()) - set(known))
        if unknown:
            raise SourceError(f"unknown bundled photos {unknown}; choose from {sorted(known)}")
        wanted = [p for p in PHOTOS if photos is None or p.name in photos]
        self._loaders = {p.name: fn for p in wanted if (fn := _loader(p)) is not None}
        self.photos = [p for p in wanted if p.name in self._loaders]
        if not self.photos:
            raise SourceError(
                "none of the requested bundled photos is present in the installed scikit-image/scikit-learn; "
                "pip install 'vq-data[demo]'"
            )
        self.crops_per_image = crops_per_image
        self.seed = seed
        self.min_crop_fraction = min_crop_fraction
        self._cache: dict[str, Image.Image] = {}
        classes = [c for c in CLASSES if any(p.label == c for p in self.photos)]
        super().__init__("bundled", "scikit-image data + scikit-learn sample images", classes, split)

    def description(self) -> str:
        import skimage
        import sklearn

        how = (
            f"{self.crops_per_image} random square crops per photo (side {self.min_crop_fraction:g}-1 of the "
            f"short side, seed {self.seed})"
            if self.crops_per_image
            else "whole photos"
        )
        names = ",".join(p.name for p in self.photos)
        return f"photos of scikit-image {skimage.__version__} / scikit-learn {sklearn.__version__} [{names}], {how}"

    def photo(self, name: str) -> Image.Image:
        """The whole photo as PIL RGB (decoded once, then cached: crops re-use it)."""
        if name not in self._cache:
            array = np.asarray(self._loaders[name]())
            if array.dtype != np.uint8:
                raise SourceError(f"bundled photo {name} has dtype {array.dtype}; expected uint8")
            self._cache[name] = Image.fromarray(array).convert("RGB")
        return self._cache[name]

    def _list_records(self) -> list[ImageRecord]:
        index = {name: i for i, name in enumerate(self.class_names)}
        records = []
        for photo in self.photos:
            library = "skimage.data" if photo.library == "skimage" else "sklearn.datasets"
            source_id = f"{library}:{photo.files[0]}"
            if not self.crops_per_image:
                records.append(
                    ImageRecord(photo.name, index[photo.label], source_id, lambda n=photo.name: self.photo(n).copy())
                )
                continue
            size = self.photo(photo.name).size
            rng = np.random.default_rng([self.seed, zlib.crc32(photo.name.encode())])
            for i in range(self.crops_per_image):
                box = _crop_box(size, rng, self.min_crop_fraction)
                records.append(
                    ImageRecord(
                        f"{photo.name}_{i:04d}",
                        index[photo.label],
                        source_id,
                        lambda n=photo.name, b=box: self.photo(n).crop(b),
                        {"crop": list(box)},
                    )
                )
        return records
