"""--precision / --compile on the tokenizer trainers: bf16 tracks fp32, checkpoints stay fp32, flags reach the configs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from vq_core import load_checkpoint
from vq_tokenizers import TrainJob, build_run
from vq_tokenizers.cli import main
from vq_tokenizers.training import Trainer

pytestmark = pytest.mark.usefixtures("single_thread")
STEPS = 6
TOLERANCE = 0.05
"""Relative gap allowed between the bf16 and fp32 L1 curves over the first steps (measured: < 1%)."""


def _batches(n: int) -> list[torch.Tensor]:
    """Smooth random images (low-frequency noise upsampled), so L1 moves visibly in a few steps."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(n, 4, 3, 4, 4, generator=g) * 2 - 1
    return list(torch.nn.functional.interpolate(low.flatten(0, 1), size=32, mode="bilinear").view(n, 4, 3, 32, 32))


def _train(out, precision: str, compile_model: bool = False) -> tuple[Trainer, list[float]]:
    job = TrainJob(
        family="vqgan", preset="tiny", data="unused", out=str(out),
        train={"batch_size": 4, "steps": STEPS, "lr": 1e-3, "disc_start": 1000, "log_every": 1, "ckpt_every": STEPS,
               "sample_every": 10**6, "precision": precision, "compile": compile_model},
    )
    model, loss, config = build_run(job)
    trainer = Trainer(model, _batches(STEPS), config, out, loss=loss, device="cpu")
    trainer.train()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return trainer, [m["l1"] for m in lines]


def test_bf16_training_tracks_fp32_and_checkpoints_stay_fp32(tmp_path) -> None:
    _, fp32 = _train(tmp_path / "fp32", "fp32")
    trainer, bf16 = _train(tmp_path / "bf16", "bf16")
    assert trainer.autocast_enabled
    gaps = np.abs(np.array(bf16) - np.array(fp32)) / np.array(fp32)
    assert gaps.max() < TOLERANCE, (fp32, bf16)
    assert fp32[-1] < fp32[0] and bf16[-1] < bf16[0]
    assert bf16 != fp32  # autocast really ran in bf16
    ckpt = load_checkpoint(tmp_path / "bf16" / "tokenizer.safetensors", family="vqgan")
    assert {v.dtype for v in ckpt.model.values() if v.is_floating_point()} == {torch.float32}
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    moments = [s["exp_avg"] for s in trainer.g_optimizer.state.values()]
    assert moments and {m.dtype for m in moments} == {torch.float32}


def test_compile_wraps_the_network_and_checkpoints_keep_plain_keys(tmp_path, monkeypatch) -> None:
    compiled = []

    def fake_compile(fn, mode=None):  # stands in for inductor: records what would be compiled
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    trainer, _ = _train(tmp_path / "run", "fp32", compile_model=True)
    assert trainer.model in compiled and len(compiled) == 2  # the autoencoder and the generator loss
    ckpt = load_checkpoint(tmp_path / "run" / "tokenizer.safetensors", family="vqgan")
    assert not any(k.startswith("_orig_mod") for k in ckpt.model)


def _captured_train_overrides(monkeypatch, module: str, args: list[str]) -> dict:
    seen = {}

    def fake_run_job(fn, job, *, name, launch_flags):
        seen["train"] = job.train
        return {}

    monkeypatch.setattr(f"vq_tokenizers.{module}.run_job", fake_run_job)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return seen["train"]


@pytest.mark.parametrize(
    ("module", "command"),
    [
        ("cli.commands", ["train", "--family", "vqgan", "--data", "bundled"]),
        ("cli.vqkd", ["train-vqkd", "--teacher", "random-clip:tiny", "--data", "bundled"]),
        ("cli.vqkd", ["train-pixel-decoder", "--tokenizer", ".", "--data", "bundled"]),
    ],
)
def test_precision_and_compile_flags_reach_the_train_config(monkeypatch, tmp_path, module, command) -> None:
    args = [*command, "--out", str(tmp_path)]
    assert _captured_train_overrides(monkeypatch, module, [*args, "--precision", "bf16", "--compile"]) == {
        "precision": "bf16", "compile": True,
    }
    assert _captured_train_overrides(monkeypatch, module, args) == {}  # the preset's values stand
