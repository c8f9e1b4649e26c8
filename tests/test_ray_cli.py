"""The training CLIs' launch flags: ``vq-tok train --ray-address local --num-workers 2`` runs the
tokenizer loop as a 2-worker Ray Train job that writes a loadable tokenizer, and several workers
without Ray are refused before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vq_tokenizers import load_tokenizer
from vq_tokenizers.cli import main as vq_tok

pytestmark = pytest.mark.ray

ARGS = ["train", "--family", "vqgan", "--preset", "tiny", "--data", "bundled", "--steps", "2", "--batch-size", "4",
        "--set", "quantizer.codebook_size=64", "--loss-set", "perceptual_weight=0"]


def test_several_workers_need_ray(tmp_path: Path) -> None:
    result = CliRunner().invoke(vq_tok, [*ARGS, "--out", str(tmp_path), "--num-workers", "2"])
    assert result.exit_code != 0 and "--ray-address" in result.output
    assert not any(tmp_path.iterdir())


def test_vq_tok_train_on_two_ray_workers(tmp_path: Path, ray_local: None) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(vq_tok, [*ARGS, "--out", str(out), "--ray-address", "local", "--num-workers", "2"])
    assert result.exit_code == 0, result.output
    model = load_tokenizer(out / "tokenizer.safetensors")
    assert model.codebook_size == 64
    tokens = model.encode(torch.zeros(1, 3, model.image_size, model.image_size))
    assert tokens.shape == (1, *model.grid)
    assert (out / "ray").is_dir()  # Ray's checkpoints default to OUT/ray
