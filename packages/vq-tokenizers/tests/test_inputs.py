"""Tokenizer.encode takes PIL images and uint8 tensors; decode takes flat (B, h*w) tokens (vq_ar.generate's output)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vq_tokenizers import build_tokenizer, get_preset

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module", params=["vqgan", "fsq"])
def model(request):  # noqa: ANN001, ANN201
    torch.manual_seed(0)
    return build_tokenizer(request.param, get_preset("tiny", request.param).model).eval()


@pytest.fixture(scope="module")
def pixels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)


def _reference(pixels: np.ndarray) -> torch.Tensor:
    """uint8 HWC -> float (B, 3, H, W) in [-1, 1], written out independently of vq_tokenizers.inputs."""
    return torch.tensor(pixels.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0)


def test_pil_and_uint8_inputs_give_the_float_tokens(model, pixels) -> None:  # noqa: ANN001
    expected = model.encode(_reference(pixels))
    assert torch.equal(model.encode([Image.fromarray(p) for p in pixels]), expected)
    assert torch.equal(model.encode(Image.fromarray(pixels[1])), expected[1:])
    assert torch.equal(model.encode(Image.fromarray(pixels[0]).convert("RGBA")), expected[:1])  # any mode -> RGB
    assert torch.equal(model.encode(torch.from_numpy(pixels).permute(0, 3, 1, 2)), expected)
    assert torch.equal(model.encode(torch.from_numpy(pixels[0]).permute(2, 0, 1)), expected[:1])


def test_flat_tokens_decode_like_grids(model, pixels) -> None:  # noqa: ANN001
    grids = model.encode(_reference(pixels))
    assert torch.equal(model.decode(grids.flatten(1)), model.decode(grids))
    with pytest.raises(ValueError, match="fit no square grid"):
        model.decode(grids.flatten(1)[:, :-1])


def test_unusable_inputs_are_refused(model, pixels) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="different sizes"):
        model.encode([Image.fromarray(pixels[0]), Image.fromarray(pixels[1][:16])])
    with pytest.raises(TypeError, match="PIL image"):
        model.encode(pixels)  # a numpy array: say what is accepted
