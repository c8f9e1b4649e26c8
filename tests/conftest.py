"""Fixtures of the cross-package tests: one local Ray instance per module, tiny token shard sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vq_core import DatasetInfo, TokenizerInfo
from vq_data import ShardSetWriter


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "ray: starts a local Ray instance (about 10 s) and Ray Train/Data jobs")


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    """One 2-CPU Ray instance for every Ray test of a module (starting Ray costs ~10 s)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread and leave the second core to the Ray workers."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_token_shards(directory: Path, *, num_samples: int = 48, grid: int = 4, codebook: int = 32, classes: int = 3) -> Path:
    """A complete token shard set of random tokens, written with the real vq-data writer."""
    rng = np.random.default_rng(0)
    tokenizer = TokenizerInfo(
        name="test",
        config_hash="0123456789abcdef",
        checkpoint_sha256="0" * 64,
        codebook_size=codebook,
        grid=(grid, grid),
        dtype="int16",
        image_size=4 * grid,
    )
    dataset = DatasetInfo(name="synthetic", source="tests", num_classes=classes)
    with ShardSetWriter(
        directory, kind="tokens", dataset=dataset, tokenizer=tokenizer, samples_per_shard=16, tool="tests", tool_version="0"
    ) as writer:
        for i in range(num_samples):
            tokens = rng.integers(0, codebook, size=(grid, grid)).astype(np.int16)
            writer.write({"__key__": f"s{i:05d}", "tokens.npy": tokens, "cls": i % classes, "json": {"i": i}})
    return directory


@pytest.fixture(scope="module")
def token_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_token_shards(tmp_path_factory.mktemp("tokens"))
