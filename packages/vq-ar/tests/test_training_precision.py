"""vq-ar train --precision / --compile: bf16 tracks fp32, weights and checkpoints stay fp32, flags reach TrainConfig."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open

import vq_ar.cli
import vq_ar.training
from vq_ar import TrainConfig, train
from vq_ar.training import token_loss

NO_DROPOUT = {"token_dropout": 0.0, "resid_dropout": 0.0, "ffn_dropout": 0.0, "class_dropout": 0.0}
TOLERANCE = 0.02
"""Relative gap allowed between the bf16 and fp32 loss curves over the first steps (measured: ~0.1%)."""


@pytest.fixture
def tokens(tmp_path: Path, write_token_shards) -> Path:  # noqa: ANN001
    base = np.random.default_rng(0).integers(0, 32, size=(4, 4, 4))
    return write_token_shards(tmp_path / "tokens", np.concatenate([base] * 4), np.arange(16) % 4, codebook_size=32, num_classes=4)


def _losses(run: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_bf16_loss_curve_tracks_fp32_and_the_model_stays_fp32(tmp_path: Path, tokens: Path) -> None:
    curves = {}
    for precision in ("fp32", "bf16"):
        config = TrainConfig(steps=8, batch_size=8, lr=3e-3, log_every=1, precision=precision)
        result = train(tokens, tmp_path / precision, size="nano", model_overrides=NO_DROPOUT, config=config)
        curves[precision] = np.array(_losses(tmp_path / precision))
    gaps = np.abs(curves["bf16"] - curves["fp32"]) / curves["fp32"]
    assert gaps.max() < TOLERANCE, curves
    assert not np.array_equal(curves["bf16"], curves["fp32"])  # autocast really ran
    assert curves["bf16"][-1] < curves["bf16"][0]
    with safe_open(str(result.model), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.float32}


def test_compile_wraps_the_loss_step_and_checkpoints_keep_plain_keys(tmp_path: Path, tokens: Path, monkeypatch) -> None:  # noqa: ANN001
    """--compile hands forward + loss to torch.compile (a recorder here: inductor takes ~2 min on 2 cores;
    benchmarks/train_steps.py runs the real one and compares its loss with eager's)."""
    compiled = []

    def fake_compile(fn, mode=None):  # noqa: ANN001, ANN202
        compiled.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    config = TrainConfig(steps=2, batch_size=8, log_every=1, precision="fp32", compile=True)
    result = train(tokens, tmp_path / "run", size="nano", model_overrides=NO_DROPOUT, config=config)
    assert compiled == [token_loss]
    with safe_open(str(result.model), "pt") as f:
        assert not any(k.startswith("_orig_mod") for k in f.keys())


def test_precision_and_compile_flags_reach_the_train_config(tmp_path: Path, tokens: Path, monkeypatch) -> None:  # noqa: ANN001
    seen: list[TrainConfig] = []

    def fake_train(data, out, *, config, **kw):  # noqa: ANN001, ANN003
        seen.append(config)
        raise SystemExit(0)

    monkeypatch.setattr(vq_ar.training, "train", fake_train)  # the command imports it when it runs
    runner = CliRunner()
    base = ["train", "--data", str(tokens), "--out", str(tmp_path / "run")]
    runner.invoke(vq_ar.cli.main, [*base, "--precision", "bf16", "--compile"])
    runner.invoke(vq_ar.cli.main, base)
    assert [(c.precision, c.compile) for c in seen] == [("bf16", True), ("auto", False)]
