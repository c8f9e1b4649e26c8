"""Shared fixtures: tiny token shard sets written with the real vq-data writer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from vq_ar import ARConfig, ARTransformer
from vq_core import DatasetInfo, TokenizerInfo
from vq_data import ShardSetWriter


def _write_token_shards(
    directory: Path,
    tokens: np.ndarray,
    labels: np.ndarray,
    *,
    codebook_size: int,
    num_classes: int,
    config_hash: str = "0123456789abcdef",
    checkpoint: str | None = None,
    samples_per_shard: int = 4,
) -> Path:
    """Write (N, h, w) tokens with labels as a complete token shard set."""
    grid = tuple(tokens.shape[1:])
    tokenizer = TokenizerInfo(
        name="test",
        config_hash=config_hash,
        checkpoint_sha256="0" * 64,
        codebook_size=codebook_size,
        grid=grid,
        dtype="int16",
        image_size=4 * grid[0],
        checkpoint=checkpoint,
    )
    dataset = DatasetInfo(name="synthetic", source="tests", num_classes=num_classes)
    with ShardSetWriter(
        directory,
        kind="tokens",
        dataset=dataset,
        tokenizer=tokenizer,
        samples_per_shard=samples_per_shard,
        tool="vq-ar-tests",
        tool_version="0",
    ) as writer:
        for i, (t, c) in enumerate(zip(tokens, labels)):
            writer.write({"__key__": f"s{i:05d}", "tokens.npy": t.astype(np.int16), "cls": int(c), "json": {"i": i}})
    return directory


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """These models are tiny: one thread is fastest and does not fight other jobs for the 2 cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _random_model(config: ARConfig, seed: int = 0, std: float = 0.2, dtype: torch.dtype = torch.float64) -> ARTransformer:
    """A model with all weights random (LlamaGen zero-inits the head, which makes every logit equal)."""
    torch.manual_seed(seed)
    model = ARTransformer(config).to(dtype)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0.0, std)
    return model.eval()


@pytest.fixture
def write_token_shards():  # noqa: ANN201 - returns the helper
    """``write_token_shards(directory, tokens (N,h,w), labels, *, codebook_size, num_classes, ...)``."""
    return _write_token_shards


@pytest.fixture
def random_model():  # noqa: ANN201 - returns the helper
    """``random_model(config, seed=0, std=0.2, dtype=float64)``: every weight random, eval mode."""
    return _random_model
