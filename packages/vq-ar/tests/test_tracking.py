"""vq-ar train writes a TensorBoard event file with the metrics.jsonl numbers; the flags reach TrainConfig."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vq_ar.cli import main


def test_ar_training_logs_loss_to_tensorboard(tmp_path: Path, write_token_shards) -> None:  # noqa: ANN001
    tokens = np.random.default_rng(0).integers(0, 32, size=(8, 4, 4))
    data = write_token_shards(tmp_path / "tokens", tokens, np.arange(8) % 4, codebook_size=32, num_classes=4)
    out = tmp_path / "run"
    args = ["train", "--data", str(data), "--out", str(out), "--size", "nano", "--steps", "4", "--batch-size", "4",
            "--log-every", "1", "--ckpt-every", "4"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    for tag in ("loss", "token_acc", "lr"):
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [m["step"] for m in lines] == [1, 2, 3, 4]
        assert [e.value for e in events] == pytest.approx([m[tag] for m in lines], rel=1e-6)

    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "quiet"), "--no-tensorboard"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "quiet" / "tensorboard").exists() and (tmp_path / "quiet" / "metrics.jsonl").is_file()
