"""Image transforms as the field uses them, producing float tensors in [-1, 1].

* eval: shorter side to ``size`` (bicubic, antialiased) then the central square, as ImageNet
  evaluation and the pack job do;
* train: random-resized-crop + horizontal flip (torchvision's parameter sampling), seeded per sample
  by a ``torch.Generator`` so augmentation does not depend on worker count or scheduling;
* ten-crop: LlamaGen tokenizes ImageNet by resizing/cropping to ``1.1 * size`` and taking the four
  corners, the centre and their mirrors (``torchvision`` order), giving 10 views per image.

Every transform takes PIL RGB and works through ``torchvision.transforms.v2.functional`` on PIL
images (PIL resampling), so the results equal plain PIL operations.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torchvision.transforms as tv1
import torchvision.transforms.v2.functional as F
from PIL import Image
from torchvision.transforms import InterpolationMode

BICUBIC = InterpolationMode.BICUBIC
TEN_CROP_RESIZE = 1.1
DEFAULT_TRAIN_SCALE = (0.64, 1.0)
DEFAULT_TRAIN_RATIO = (3 / 4, 4 / 3)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL RGB -> float32 (3, H, W) in [-1, 1] (``u8 / 127.5 - 1``)."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any leading shape, channels before H, W) -> uint8 in [0, 255], rounded."""
    return images.detach().float().add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def to_pil(images: torch.Tensor) -> Image.Image | list[Image.Image]:
    """(3, H, W) in [-1, 1] -> one PIL RGB image; (B, 3, H, W) -> a list of them."""
    if images.dim() == 4:
        return [to_pil(image) for image in images]  # type: ignore[misc]
    if images.dim() != 3 or images.shape[0] not in (1, 3):
        raise ValueError(f"to_pil expects (3, H, W) or (B, 3, H, W) images in [-1, 1], got shape {tuple(images.shape)}")
    array = to_uint8(images).expand(3, -1, -1).permute(1, 2, 0).numpy()
    return Image.fromarray(np.ascontiguousarray(array))


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Shorter side to ``size`` (bicubic, antialiased), then the central ``size x size`` square."""
    resized = F.resize(image, [size], interpolation=BICUBIC, antialias=True)
    return F.center_crop(resized, [size, size])


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator))


class EvalTransform:
    """Deterministic: resize the shorter side + centre crop, to [-1, 1]."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return to_tensor(resize_center_crop(image, self.size))

    def __repr__(self) -> str:
        return f"resize_center_crop({self.size}, bicubic)"


class TrainTransform:
    """Random-resized-crop (bicubic) + optional horizontal flip, to [-1, 1].

    ``scale`` defaults to (0.64, 1): tokenizer training keeps most of each image (LlamaGen crops
    80-100% of the shorter side); classification-style (0.08, 1) crops would be too aggressive.
    """

    def __init__(
        self,
        size: int,
        *,
        scale: Sequence[float] = DEFAULT_TRAIN_SCALE,
        ratio: Sequence[float] = DEFAULT_TRAIN_RATIO,
        flip: bool = True,
    ) -> None:
        self.size = size
        self.scale = (float(scale[0]), float(scale[1]))
        self.ratio = (float(ratio[0]), float(ratio[1]))
        self.flip = flip

    def params(self, image: Image.Image, generator: torch.Generator | None = None) -> tuple[int, int, int, int, bool]:
        """Crop box (top, left, height, width) and flip flag; torchvision's sampling, seeded by ``generator``."""
        if generator is None:
            top, left, height, width = tv1.RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
            return top, left, height, width, bool(self.flip and torch.rand(1).item() < 0.5)
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_draw_seed(generator))
            top, left, height, width = tv1.RandomResizedCrop.get_params(image, list(self.scale), list(self.ratio))
            flip = bool(self.flip and torch.rand(1).item() < 0.5)
        return top, left, height, width, flip

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        top, left, height, width, flip = self.params(image, generator)
        crop = F.resized_crop(image, top, left, height, width, [self.size, self.size], interpolation=BICUBIC, antialias=True)
        if flip:
            crop = F.horizontal_flip(crop)
        return to_tensor(crop)

    def __repr__(self) -> str:
        return f"random_resized_crop({self.size}, scale={self.scale}, ratio={self.ratio}, bicubic) + flip={self.flip}"


def ten_crop(image: Image.Image, size: int, *, resize_factor: float = TEN_CROP_RESIZE) -> torch.Tensor:
    """LlamaGen's ten-crop: resize/centre-crop to ``round(resize_factor * size)``, then 4 corners + centre
    and their horizontal mirrors (torchvision order).  Returns (10, 3, size, size) in [-1, 1]."""
    base = resize_center_crop(image, round(size * resize_factor))
    return torch.stack([to_tensor(crop) for crop in F.ten_crop(base, [size, size])])


class TenCropTransform:
    """:func:`ten_crop` as a transform object (for loaders); returns (10, 3, size, size)."""

    def __init__(self, size: int, *, resize_factor: float = TEN_CROP_RESIZE) -> None:
        self.size = size
        self.resize_factor = resize_factor

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> torch.Tensor:
        return ten_crop(image, self.size, resize_factor=self.resize_factor)

    def __repr__(self) -> str:
        return f"ten_crop({self.size}, resize_factor={self.resize_factor})"
