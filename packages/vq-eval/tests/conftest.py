"""Shared test inputs: random FID-Inception weights in pytorch-fid's layout, small photos, a stub tokenizer.

No pretrained weights exist offline, so every network is randomly initialised, saved to a file in
the layout the real weights use, and loaded back through the production code path.
"""

from __future__ import annotations

from pathlib import Path

import lpips
import numpy as np
import pytest
import torch
import torchvision
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata
from threadpoolctl import threadpool_limits
from torch import nn
from torch.nn import functional as F

from vq_eval import INCEPTION_WEIGHTS_NAME, FIDInceptionV3, load_fid_inception, random_inception_state
from vq_eval.inception import InceptionFeatures
from vq_eval.cli import main as cli_main

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")

# the test machine is shared: one torch thread and one BLAS thread per test process (oversubscribed
# BLAS threads made 1024-d eigendecompositions 3x slower than a single thread)
torch.set_num_threads(1)
threadpool_limits(1)


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / INCEPTION_WEIGHTS_NAME
    torch.save(random_inception_state(), path)
    return path


@pytest.fixture(scope="session")
def inception(inception_weights: Path) -> FIDInceptionV3:
    return load_fid_inception(inception_weights)


@pytest.fixture(scope="session")
def lpips_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Random AlexNet at <root>/torch/hub/checkpoints (where torchvision caches downloads), random LPIPS heads."""
    root = tmp_path_factory.mktemp("lpips")
    generator = torch.Generator().manual_seed(0)
    with torch.device("meta"):  # shapes only: skips AlexNet's slow default initialisation
        shapes = {k: v.shape for k, v in torchvision.models.alexnet(weights=None).state_dict().items()}
    backbone = root / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    backbone.parent.mkdir(parents=True)
    torch.save({k: torch.randn(shape, generator=generator) * 0.05 for k, shape in shapes.items()}, backbone)
    heads = lpips.LPIPS(pretrained=False, net="alex", pnet_rand=True, verbose=False).state_dict()
    linear = root / "lin.pth"
    torch.save(
        {k: torch.rand(v.shape, generator=generator) for k, v in heads.items() if k.startswith("lin") and not k.startswith("lins")}, linear
    )
    return backbone, linear


def photo(name: str, size: tuple[int, int]) -> np.ndarray:
    """A skimage sample photo as uint8 RGB, resized to (width, height) ``size``."""
    image = getattr(skdata, name)()
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.asarray(Image.fromarray(image[..., :3]).resize(size, Image.Resampling.BICUBIC))


def write_photos(folder: Path, count: int, size: tuple[int, int] = (64, 48)) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        path = folder / f"{index:03d}_{PHOTOS[index % len(PHOTOS)]}.png"
        Image.fromarray(photo(PHOTOS[index % len(PHOTOS)], size)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def photo_folder(tmp_path: Path) -> Path:
    """Three 64x48 (WxH) photos as PNG files."""
    write_photos(tmp_path / "photos", 3)
    return tmp_path / "photos"


class PaletteTokenizer(nn.Module):
    """A stub tokenizer: each ``patch x patch`` block becomes the nearest of ``codebook_size`` colours.

    Deterministic and cheap, with real reconstruction error and uneven code usage, so metric
    pipelines can be checked against values computed directly in the test.
    """

    def __init__(self, codebook_size: int = 16, patch: int = 8, image_size: int = 32, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("palette", torch.rand(codebook_size, 3, generator=generator) * 2 - 1)
        self.patch, self.codebook_size, self.image_size = patch, codebook_size, image_size

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        means = nn.functional.avg_pool2d(images, self.patch).permute(0, 2, 3, 1)  # (B, h, w, 3)
        return torch.cdist(means.reshape(-1, 3), self.palette).argmin(dim=1).view(means.shape[:3])

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        """Token ids (B, h, w) -> their colours (B, 3, h, w): the "code vectors" a linear probe reads."""
        return self.palette[indices].permute(0, 3, 1, 2)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        return self.dequantize(indices).repeat_interleave(self.patch, dim=2).repeat_interleave(self.patch, dim=3)


@pytest.fixture
def stub_tokenizer() -> PaletteTokenizer:
    return PaletteTokenizer()


class CheapInception(nn.Module):
    """What the metrics use of :class:`FIDInceptionV3`, with cheap fixed maps: 64-d features (a 4x4 colour
    layout, lifted), 27-d "spatial" features (a 3x3 colour layout) and 10 classes."""

    weights_path = None
    weights_sha256 = "c" * 64
    resize = "pytorch-fid"
    preprocessing = "cheap test network"

    def __init__(self) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(0)
        self.lift = nn.Parameter(torch.randn(48, 64, generator=generator), requires_grad=False)
        self.classify = nn.Parameter(torch.randn(64, 10, generator=generator) * 3, requires_grad=False)

    def pool_features(self, images: torch.Tensor) -> torch.Tensor:
        return torch.tanh(F.adaptive_avg_pool2d(images.float(), 4).flatten(1) @ self.lift)

    def features(self, images: torch.Tensor) -> InceptionFeatures:
        return InceptionFeatures(self.pool_features(images), F.adaptive_avg_pool2d(images.float(), 3).flatten(1))

    def unbiased_logits(self, pool: torch.Tensor) -> torch.Tensor:
        return pool @ self.classify


@pytest.fixture(scope="session")
def cheap_inception() -> CheapInception:
    return CheapInception()


def _photo_batches(count: int, batch_size: int, size: int = 32) -> list[torch.Tensor]:
    """Photos as [-1, 1] tensors (8-bit levels), split into batches (the last may be smaller)."""
    images = torch.stack(
        [torch.from_numpy(photo(PHOTOS[i % len(PHOTOS)], (size, size)).copy()).permute(2, 0, 1).float() / 127.5 - 1 for i in range(count)]
    )
    # distinct images even when photos repeat: flip every other copy
    images[len(PHOTOS) :: 2] = images[len(PHOTOS) :: 2].flip(-1)
    return list(images.split(batch_size))


@pytest.fixture
def photo_batches():
    """``photo_batches(count, batch_size, size=32)`` -> list of [-1, 1] image batches."""
    return _photo_batches


@pytest.fixture
def make_photos():
    """``make_photos(folder, count, size=(w, h))`` writes PNG photos and returns their paths."""
    return write_photos


@pytest.fixture
def run_cli():
    """``run_cli(*args)`` runs ``vq-eval ARGS`` in-process, asserts success and returns the output."""

    def run(*args: object) -> str:
        result = CliRunner().invoke(cli_main, [str(a) for a in args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    return run
