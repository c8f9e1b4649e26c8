"""Small synthetic inputs: image folders and token shard sets built in a temp dir."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import webdataset as wds

from vq_core import DatasetInfo, Manifest, ShardEntry, TokenizerInfo, file_sha256


def _write_image(path: Path, seed: int, size: tuple[int, int] = (40, 30)) -> Path:
    """A random RGB image of (width, height) ``size``; format from the suffix."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """root/<class>/...: 3 classes, nested sub-folders, png and jpg, 11 images."""
    root = tmp_path / "images"
    layout = {"cat": ["a.png", "b.jpg", "deep/c.png"], "dog": ["d.png", "e.png", "f.png", "g.jpg"], "emu": ["h.png", "i.png", "j.png", "k.png"]}
    seed = 0
    for cls, names in layout.items():
        for name in names:
            _write_image(root / cls / name, seed, size=(36 + seed, 28 + seed % 5))
            seed += 1
    return root


def _token_info(grid: tuple[int, ...] = (2, 3), codebook: int = 50) -> TokenizerInfo:
    return TokenizerInfo(
        name="vqgan", config_hash="cafe", checkpoint_sha256="0" * 64, codebook_size=codebook, grid=grid, dtype="int16", image_size=16
    )


def _write_token_set(directory: Path, counts: list[int], *, grid: tuple[int, ...] = (2, 3), views: int = 0) -> list[dict]:
    """A token shard set whose shards hold exactly ``counts`` samples (uneven on purpose).

    Written with webdataset's TarWriter and a hand-built manifest rather than ShardSetWriter, which
    only ever makes equal shards; readers must cope with any counts a manifest records.
    """
    directory.mkdir(parents=True, exist_ok=True)
    samples, entries, index = [], [], 0
    for number, count in enumerate(counts):
        path = directory / f"shard-{number:06d}.tar"
        with wds.TarWriter(str(path)) as tar:
            for _ in range(count):
                shape = (views, *grid) if views else grid
                tokens = np.random.default_rng(index).integers(0, 50, shape).astype(np.int16)
                sample = {"__key__": f"s{index:04d}", "tokens.npy": tokens, "cls": index % 7}
                tar.write(sample)
                samples.append(sample)
                index += 1
        entries.append(ShardEntry(name=path.name, num_samples=count, sha256=file_sha256(path), size_bytes=path.stat().st_size))
    Manifest(
        kind="tokens", dataset=DatasetInfo(name="t", source="test", num_classes=7), tokenizer=_token_info(grid),
        samples_per_shard=max(counts), shards=entries, complete=True, tool="test", tool_version="0",
    ).save(directory)
    return samples


@pytest.fixture
def write_image():
    """``write_image(path, seed, size=(w, h))`` -> path of a random RGB image."""
    return _write_image


@pytest.fixture
def write_token_set():
    """``write_token_set(directory, counts, grid=(2, 3), views=0)`` -> the samples written."""
    return _write_token_set
