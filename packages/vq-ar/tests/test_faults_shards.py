"""A flipped label byte in a token shard is refused by AR training and validation, naming the shard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vq_ar import load_token_set
from vq_ar.cli import main
from vq_data import ShardError


def _flip_label(shard: Path, key: str) -> None:
    """One stored byte of ``key``'s label, in place (tar checksums cover headers only, so it still parses)."""
    data = bytearray(shard.read_bytes())
    offset = data.index(f"{key}.cls".encode()) + 512
    data[offset] = ord("2") if data[offset] != ord("2") else ord("1")
    shard.write_bytes(bytes(data))


@pytest.fixture
def flipped(tmp_path, write_token_shards) -> Path:
    rng = np.random.default_rng(0)
    tokens, labels = rng.integers(0, 16, (8, 2, 2)), np.arange(8) % 3
    data = write_token_shards(tmp_path / "tokens", tokens, labels, codebook_size=16, num_classes=3)
    _flip_label(data / "shard-000001.tar", "s00005")
    return data


def test_load_token_set_refuses_a_flipped_label_unless_asked(flipped):
    with pytest.raises(ShardError, match=r"shard-000001\.tar does not match its manifest"):
        load_token_set(flipped)
    assert load_token_set(flipped, verify=False).labels[5] != 5 % 3  # the flip is real: it would be trained on


def test_train_cli_stops_in_one_line_and_no_verify_opts_out(flipped, tmp_path):
    args = ["train", "--data", str(flipped), "--size", "nano", "--steps", "1", "--batch-size", "2", "--precision", "fp32"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run")])
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "Traceback" not in result.output
    assert result.output.startswith("Error: shard") and "shard-000001.tar" in result.output and "--no-verify" in result.output
    assert not (tmp_path / "run" / "checkpoints").exists()
    opted_out = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run2"), "--no-verify"])
    assert opted_out.exit_code == 0, opted_out.output
