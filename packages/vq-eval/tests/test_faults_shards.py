"""Image shards read for evaluation are verified while they stream; ``--no-verify`` opts out."""

from __future__ import annotations

import io

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vq_core import DatasetInfo
from vq_data import ShardError, ShardSetWriter
from vq_eval.cli import main
from vq_eval.sources import open_images


@pytest.fixture
def flipped_shards(tmp_path):
    root = tmp_path / "images"
    with ShardSetWriter(
        root, kind="images", dataset=DatasetInfo(name="r", source="t", num_classes=2, image_size=8), samples_per_shard=2,
        tool="t", tool_version="0",
    ) as writer:
        for i in range(4):
            buffer = io.BytesIO()
            Image.fromarray(np.random.default_rng(i).integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buffer, format="png")
            writer.write({"__key__": f"img{i}", "png": buffer.getvalue(), "cls": i % 2})
    shard = root / "shard-000001.tar"
    data = bytearray(shard.read_bytes())
    offset = data.index(b"img3.cls") + 512
    data[offset] = ord("0")  # label 1 -> 0, the image bytes untouched
    shard.write_bytes(bytes(data))
    return root


def test_evaluation_sources_verify_shards_unless_asked_not_to(flipped_shards):
    with pytest.raises(ShardError, match=r"shard-000001\.tar does not match its manifest"):
        list(open_images(flipped_shards, batch_size=2))
    assert sum(len(b) for b in open_images(flipped_shards, batch_size=2, verify=False)) == 4


@pytest.mark.parametrize("command", ["fid-cache", "fid", "generation", "tokenizer"])
def test_every_image_reading_command_has_no_verify(command):
    assert "--no-verify" in CliRunner().invoke(main, [command, "--help"]).output
