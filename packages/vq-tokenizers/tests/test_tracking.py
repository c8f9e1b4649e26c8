"""Tokenizer trainers (conv, VQ-KD) write TensorBoard event files holding the metrics.jsonl numbers;
the --tensorboard / --wandb flags reach the train config."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vq_tokenizers import TrainJob, build_run
from vq_tokenizers.cli import main
from vq_tokenizers.teachers import load_teacher
from vq_tokenizers.training import ImageBatches, Trainer
from vq_tokenizers.vqkd import VQKD
from vq_tokenizers.training.vqkd import VQKDTrainConfig, VQKDTrainer, vqkd_config_for

pytestmark = pytest.mark.usefixtures("single_thread")


def assert_event_file_matches_jsonl(out) -> None:
    """Each logged metric of metrics.jsonl is in OUT/tensorboard at the same step with the same value."""
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    acc = EventAccumulator(str(out / "tensorboard"))
    acc.Reload()
    assert set(acc.Tags()["scalars"]) == set(lines[0]) - {"step"} and any("loss" in t for t in acc.Tags()["scalars"])
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        assert [e.step for e in events] == [int(m["step"]) for m in lines]
        assert [e.value for e in events] == pytest.approx([m[tag] for m in lines], rel=1e-6, abs=1e-12)


def test_conv_trainer_logs_to_tensorboard(tmp_path) -> None:
    job = TrainJob(
        family="vqgan", preset="tiny", data="unused", out=str(tmp_path),
        train={"batch_size": 2, "steps": 3, "disc_start": 1000, "log_every": 1, "ckpt_every": 3, "sample_every": 10**6},
    )
    model, loss, config = build_run(job)
    images = [torch.rand(2, 3, 32, 32) * 2 - 1 for _ in range(3)]
    Trainer(model, images, config, tmp_path, loss=loss, device="cpu").train()
    assert_event_file_matches_jsonl(tmp_path)


def test_vqkd_trainer_logs_to_tensorboard(teacher_photos, tmp_path) -> None:
    teacher = load_teacher("random-clip:tiny")
    torch.manual_seed(0)
    model = VQKD(vqkd_config_for("tiny", teacher))
    config = VQKDTrainConfig(steps=2, batch_size=8, log_every=1, ckpt_every=2)
    VQKDTrainer(model, teacher, ImageBatches(teacher_photos, image_size=32, batch_size=8), config, tmp_path).train()
    assert_event_file_matches_jsonl(tmp_path)


def test_no_tensorboard_flag_and_wandb_error(monkeypatch, tmp_path) -> None:
    seen = {}

    def fake_run_job(fn, job, *, name, launch_flags):
        seen["train"] = job.train
        return {}

    monkeypatch.setattr("vq_tokenizers.cli.commands.run_job", fake_run_job)
    args = ["train", "--family", "vqgan", "--data", "bundled", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*args, "--no-tensorboard"])
    assert result.exit_code == 0, result.output
    assert seen["train"] == {"tensorboard": False}
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None)
    result = CliRunner().invoke(main, [*args, "--wandb"])
    assert result.exit_code == 2 and "--wandb needs the wandb package" in result.output
