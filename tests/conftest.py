"""Fixtures of the cross-package tests: one local Ray instance per module, tiny token shard sets, a tiny
tokenized world (images, VQGAN tokenizers, their token shards, a 2-step AR run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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


def build_tokenized_world(
    tmp: Path, seeds: dict[str, int], *, ar_tokens: str, ar_flags: Sequence[str] = ()
) -> dict[str, Path]:
    """In ``tmp``: ``images/{a,b}/`` (4 random 32-px PNGs a class), a tiny VQGAN ``NAME.safetensors`` for each
    ``NAME: seed`` of ``seeds``, its token shards ``tokens_NAME``, and a 2-step nano ``vq-ar train`` (plus
    ``ar_flags``) of ``tokens_<ar_tokens>`` in ``ar``.  Built on one torch thread, where tiny models run fastest.

    Returns the paths by key: ``tmp``, ``images``, each NAME, each ``tokens_NAME`` and ``ar``."""
    from click.testing import CliRunner  # here, not at the top: most tests of this folder need none of these
    from PIL import Image

    from vq_ar.cli import main as ar_main
    from vq_tokenizers import build_tokenizer, get_preset, save_tokenizer, tokenize_shards

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp / "images" / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp / "images" / label / f"{i}.png")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        paths = {"tmp": tmp, "images": tmp / "images", "ar": tmp / "ar"}
        for name, seed in seeds.items():
            torch.manual_seed(seed)
            paths[name] = save_tokenizer(build_tokenizer("vqgan", get_preset("tiny", "vqgan").model), tmp / f"{name}.safetensors")
        for name in seeds:
            paths[f"tokens_{name}"] = tmp / f"tokens_{name}"
            tokenize_shards(paths[name], paths["images"], paths[f"tokens_{name}"], samples_per_shard=4, batch_size=8)
        run = CliRunner().invoke(
            ar_main, ["train", "--data", str(paths[f"tokens_{ar_tokens}"]), "--out", str(paths["ar"]), "--size", "nano",
                      "--steps", "2", "--batch-size", "4", "--log-every", "1", *ar_flags],
        )  # fmt: skip
        assert run.exit_code == 0, run.output
    finally:
        torch.set_num_threads(before)
    return paths


@pytest.fixture(scope="session")
def tokenized_world() -> Callable[..., dict[str, Path]]:
    """:func:`build_tokenized_world` (test modules cannot import conftest under ``--import-mode=importlib``)."""
    return build_tokenized_world
