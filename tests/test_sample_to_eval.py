"""`vq-ar sample --out S` then `vq-eval generation S --ref REF`, with no extra flags: the sample layout both sides agree on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from vq_ar.cli import main as vq_ar
from vq_core import StrictConfig
from vq_eval import INCEPTION_WEIGHTS_ENV, random_inception_state
from vq_eval.cli import main as vq_eval
from vq_tokenizers import Tokenizer, load_tokenizer, register_tokenizer, save_tokenizer


class FlatColourConfig(StrictConfig):
    codebook_size: int
    side: int
    image_size: int


@register_tokenizer
class FlatColourTokenizer(Tokenizer):
    """Decodes each token to a flat colour patch: a decoder that costs nothing."""

    family = "e2e-flat-colour"
    config_class = FlatColourConfig

    def __init__(self, config: FlatColourConfig) -> None:
        super().__init__(config)
        self.palette = nn.Parameter(torch.rand(config.codebook_size, 3) * 2 - 1)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def grid(self) -> tuple[int, int]:
        return (self.config.side, self.config.side)

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        patch = self.config.image_size // self.config.side
        return self.palette[indices].permute(0, 3, 1, 2).repeat_interleave(patch, 2).repeat_interleave(patch, 3)


def _invoke(cli, *args: object) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_sample_output_is_scored_by_vq_eval_generation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token_shards: Path, one_thread: None
) -> None:
    torch.manual_seed(0)
    tokenizer = save_tokenizer(FlatColourTokenizer(FlatColourConfig(codebook_size=32, side=4, image_size=16)), tmp_path / "tok.pt")
    shards = Path(shutil.copytree(token_shards, tmp_path / "tokens"))
    manifest_path = shards / "manifest.json"  # point the token set at the decoder (its hash must match)
    manifest = json.loads(manifest_path.read_text())
    manifest["tokenizer"].update(config_hash=load_tokenizer(tokenizer).token_space_hash(), checkpoint=str(tokenizer))
    manifest_path.write_text(json.dumps(manifest))
    trained = _invoke(vq_ar, "train", "--data", shards, "--out", tmp_path / "run", "--size", "nano", "--steps", 2, "--batch-size", 4,
                      "--log-every", 1)  # fmt: skip
    model = json.loads(trained.strip().splitlines()[-1])["model"]
    samples = tmp_path / "S"
    _invoke(vq_ar, "sample", "--ckpt", model, "--class", 0, "--class", 1, "--n", 3, "--out", samples)
    assert (samples / "grid.png").is_file() and not list((samples / "samples").glob("grid*"))

    weights = tmp_path / "inception.pth"
    torch.save(random_inception_state(), weights)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(weights))  # where a user's real weights are found: no flag
    ref = tmp_path / "VIRTUAL_tiny.npz"
    np.savez(ref, np.random.default_rng(0).integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8))  # ADM's layout
    out = tmp_path / "gen.json"
    printed = _invoke(vq_eval, "generation", samples, "--ref", ref, "--device", "cpu", "--out", out)
    result = json.loads(out.read_text())
    assert result["num_images"] == 6  # the six samples: not the grid, not the PNG copies
    assert {"fid", "sfid", "inception_score", "precision", "recall", "kid"} <= set(result)
    assert result["provenance"]["resize"] == "tf1"  # an ADM batch is scored the way ADM's evaluator does
    assert result["provenance"]["samples"]["source"].endswith("samples.npz")
    assert "FID on 6 images is biased" in printed and "used 6 samples" in printed
