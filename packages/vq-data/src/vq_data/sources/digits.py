"""Real handwritten digits shipped inside the scikit-learn wheel (``sklearn.datasets.load_digits``).

1,797 images of 8x8 pixels with 17 grey levels (0-16), 10 classes ``"0"`` ... ``"9"`` (UCI optdigits
test set).  Nothing is downloaded.  Each record opens as a white-on-black 8x8 RGB picture (levels
scaled to 0-255 as ``round(v * 255 / 16)``); packing enlarges it to the shard set's ``image_size`` with
vq-data's :func:`~vq_data.transforms.resize_center_crop` (torchvision bicubic, clamped to 0-255), so a
16 or 32 px digit set is made by ``pack(DigitsSource(), out, image_size=16)``.  :meth:`DigitsSource.arrays`
returns the same pixels without packing.

The split is fixed and documented so every run trains and judges on the same images: per class, the
images of that class (in scikit-learn's order) are permuted by ``numpy.random.default_rng([seed, c])``
and the first ``round(heldout_fraction * n_c)`` of them are held out (stratified: every class keeps
its share).  With the defaults (seed 0, fraction 0.3) 539 images are held out and 1,258 train.  The
held-out images are for independent judges (``vq_eval.DigitsJudge``) and reconstruction evaluation;
models train on ``train`` only.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image

from vq_data.sources.base import ImageRecord, ImageSource, SourceError
from vq_data.transforms import resize_center_crop

CLASSES = tuple(str(d) for d in range(10))
SPLITS = ("train", "heldout")
DEFAULT_HELDOUT_FRACTION = 0.3
DEFAULT_SPLIT_SEED = 0
MAX_LEVEL = 16


@cache
def _load() -> tuple[np.ndarray, np.ndarray]:
    """(1797, 8, 8) levels 0-16 and (1797,) labels, read once from the scikit-learn wheel."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # a demo-only dependency
        raise SourceError("the digits source reads scikit-learn's copy, and scikit-learn is not installed; "
                          "pip install 'vq-data[demo]'") from err

    bunch = load_digits()
    return np.asarray(bunch.images), np.asarray(bunch.target, dtype=np.int64)


def digits_split(
    labels: np.ndarray, *, heldout_fraction: float = DEFAULT_HELDOUT_FRACTION, seed: int = DEFAULT_SPLIT_SEED
) -> dict[str, np.ndarray]:
    """Indices (sorted) of the ``train`` and ``heldout`` images: a seeded, stratified split (module docstring)."""
    if not 0 < heldout_fraction < 1:
        raise SourceError(f"heldout_fraction must lie in (0, 1), got {heldout_fraction}")
    heldout: list[np.ndarray] = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = np.random.default_rng([seed, int(c)]).permutation(members.size)
        heldout.append(members[order[: round(heldout_fraction * members.size)]])
    held = np.sort(np.concatenate(heldout))
    return {"train": np.setdiff1d(np.arange(labels.size), held), "heldout": held}


def digit_image(levels: np.ndarray) -> Image.Image:
    """One 8x8 image of levels 0-16 -> the white-on-black 8x8 RGB picture a record opens as."""
    return Image.fromarray(np.rint(levels * (255 / MAX_LEVEL)).astype(np.uint8), mode="L").convert("RGB")


class DigitsSource(ImageSource):
    """scikit-learn's 8x8 handwritten digits; ``split`` train / heldout / None (all of them)."""

    kind = "digits"

    def __init__(
        self,
        *,
        split: str | None = "train",
        heldout_fraction: float = DEFAULT_HELDOUT_FRACTION,
        split_seed: int = DEFAULT_SPLIT_SEED,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise SourceError(f"digits split {split!r} is unknown; choose one of {', '.join(SPLITS)} (or none for all)")
        self.heldout_fraction = heldout_fraction
        self.split_seed = split_seed
        super().__init__("digits", "sklearn.datasets.load_digits", CLASSES, split)

    def description(self) -> str:
        import sklearn

        which = f"split {self.split}" if self.split else "all images"
        return (
            f"scikit-learn {sklearn.__version__} load_digits (8x8, levels 0-16 -> 0-255, white on black); "
            f"{which} of a stratified split holding out {self.heldout_fraction:g} per class (seed {self.split_seed})"
        )

    def indices(self) -> np.ndarray:
        """Indices into ``load_digits()`` of this source's images, ascending."""
        _, labels = _load()
        if self.split is None:
            return np.arange(labels.size)
        return digits_split(labels, heldout_fraction=self.heldout_fraction, seed=self.split_seed)[self.split]

    def arrays(self, image_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
        """The split's images as ``pack(..., image_size=image_size)`` stores them: (N, S, S, 3) uint8, and
        their (N,) labels, in record order."""
        levels, labels = _load()
        index = self.indices()
        images = np.stack([np.asarray(resize_center_crop(digit_image(levels[i]), image_size)) for i in index])
        return images, labels[index]

    def _list_records(self) -> list[ImageRecord]:
        levels, labels = _load()
        return [
            ImageRecord(
                f"digit_{i:04d}", int(labels[i]), f"sklearn.datasets.load_digits:{i}",
                lambda i=i: digit_image(levels[i]), {"index": int(i)},
            )
            for i in self.indices()
        ]
