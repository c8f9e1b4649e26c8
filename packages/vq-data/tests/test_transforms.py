"""Transforms against hand-written PIL operations, and their seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from vq_data import EvalTransform, TrainTransform, resize_center_crop, ten_crop, to_pil, to_tensor, to_uint8


def _photo(width: int = 97, height: int = 61, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((width, height), Image.BILINEAR)


def _manual_resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    if width <= height:
        new = (size, int(size * height / width))
    else:
        new = (int(size * width / height), size)
    resized = image.resize(new, Image.BICUBIC)
    left, top = int(round((new[0] - size) / 2)), int(round((new[1] - size) / 2))
    return resized.crop((left, top, left + size, top + size))


def _pixels(tensor: torch.Tensor) -> np.ndarray:
    return to_uint8(tensor).permute(1, 2, 0).numpy()


@pytest.mark.parametrize("shape", [(97, 61), (50, 80), (32, 32)])
def test_eval_transform_is_pil_resize_and_center_crop(shape):
    image = _photo(*shape)
    expected = np.asarray(_manual_resize_center_crop(image, 24))
    np.testing.assert_array_equal(np.asarray(resize_center_crop(image, 24)), expected)
    out = EvalTransform(24)(image)
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32
    assert -1.0 <= float(out.min()) and float(out.max()) <= 1.0
    np.testing.assert_allclose(out.permute(1, 2, 0).numpy(), expected / 127.5 - 1.0, atol=1e-6)


def test_train_transform_matches_crop_resize_flip_and_is_seeded():
    image = _photo()
    transform = TrainTransform(16, scale=(0.3, 1.0), ratio=(3 / 4, 4 / 3))
    flips = []
    for seed in range(40):
        top, left, height, width, flip = transform.params(image, torch.Generator().manual_seed(seed))
        assert 0.3 * 97 * 61 * 0.9 <= height * width <= 97 * 61 and 0 <= top <= 61 - height and 0 <= left <= 97 - width
        assert 3 / 4 - 0.1 <= width / height <= 4 / 3 + 0.1
        manual = image.crop((left, top, left + width, top + height)).resize((16, 16), Image.BICUBIC)
        if flip:
            manual = ImageOps.mirror(manual)
        out = transform(image, torch.Generator().manual_seed(seed))
        np.testing.assert_array_equal(_pixels(out), np.asarray(manual))
        flips.append(flip)
    assert 8 <= sum(flips) <= 32  # roughly half flipped
    a = transform(image, torch.Generator().manual_seed(5))
    torch.manual_seed(123)
    state = torch.get_rng_state()
    b = transform(image, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), state)  # seeded and no global RNG side effect
    assert not torch.equal(a, transform(image, torch.Generator().manual_seed(6)))


def test_ten_crop_is_corners_center_and_mirrors():
    image = _photo(90, 70)
    size = 20
    base = _manual_resize_center_crop(image, round(size * 1.1))
    side = base.size[0]

    def five(img: Image.Image) -> list[Image.Image]:
        c = int(round((side - size) / 2))
        boxes = [(0, 0), (side - size, 0), (0, side - size), (side - size, side - size), (c, c)]
        return [img.crop((x, y, x + size, y + size)) for x, y in boxes]

    expected = five(base) + five(ImageOps.mirror(base))
    crops = ten_crop(image, size)
    assert crops.shape == (10, 3, size, size)
    for crop, reference in zip(crops, expected):
        np.testing.assert_array_equal(_pixels(crop), np.asarray(reference))
    np.testing.assert_array_equal(_pixels(crops[5]), np.asarray(ImageOps.mirror(expected[1])))


def test_uint8_and_pil_round_trips_are_exact():
    array = np.random.default_rng(0).integers(0, 256, (13, 17, 3), dtype=np.uint8)
    tensor = to_tensor(Image.fromarray(array))
    assert tensor.shape == (3, 13, 17)
    np.testing.assert_allclose(tensor.permute(1, 2, 0).numpy(), array / 127.5 - 1, atol=1e-6)
    np.testing.assert_array_equal(to_uint8(tensor).permute(1, 2, 0).numpy(), array)
    np.testing.assert_array_equal(np.asarray(to_pil(tensor)), array)
    batch = to_pil(torch.stack([tensor, -tensor]))
    assert isinstance(batch, list) and len(batch) == 2
    assert to_uint8(torch.tensor([-3.0, 3.0, 0.0])).tolist() == [0, 255, 128]  # clamped; 127.5 rounds half-to-even
    with pytest.raises(ValueError, match="to_pil expects"):
        to_pil(torch.zeros(2, 4, 4))
    assert math.isclose(float(to_tensor(Image.new("L", (2, 2), 255)).min()), 1.0)
