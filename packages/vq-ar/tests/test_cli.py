"""End to end through the ``vq-ar`` CLI: train -> sample PNGs -> validate, with a test pixel decoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from vq_ar.cli import main
from vq_core import StrictConfig
from vq_tokenizers import Tokenizer, load_tokenizer, register_tokenizer, save_tokenizer


class PaletteConfig(StrictConfig):
    codebook_size: int
    side: int
    image_size: int


@register_tokenizer
class PaletteTokenizer(Tokenizer):
    """Each token is a flat colour patch: decoding is exact and easy to check pixel by pixel."""

    family = "vq-ar-test-palette"
    config_class = PaletteConfig

    def __init__(self, config: PaletteConfig) -> None:
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
        colours = self.palette[indices].permute(0, 3, 1, 2)
        return colours.repeat_interleave(patch, 2).repeat_interleave(patch, 3)


def _tokenizer(path: Path, seed: int, codebook: int = 32) -> Path:
    torch.manual_seed(seed)
    return save_tokenizer(PaletteTokenizer(PaletteConfig(codebook_size=codebook, side=4, image_size=16)), path)


@pytest.fixture
def trained(tmp_path: Path, write_token_shards) -> dict[str, Path]:  # noqa: ANN001
    tok_path = _tokenizer(tmp_path / "palette.safetensors", seed=0)
    token_hash = load_tokenizer(tok_path).token_space_hash()
    base = np.random.default_rng(0).integers(0, 32, size=(3, 4, 4))
    data = write_token_shards(
        tmp_path / "tokens",
        np.concatenate([base] * 4),
        np.arange(12) % 3,
        codebook_size=32,
        num_classes=3,
        config_hash=token_hash,
        checkpoint=str(tok_path),
    )
    run = tmp_path / "run"
    result = CliRunner().invoke(
        main,
        ["train", "--data", str(data), "--out", str(run), "--size", "nano", "--steps", "60", "--batch-size", "6",
         "--lr", "3e-3", "--log-every", "20", "--set", "class_dropout=0.0"],
    )
    assert result.exit_code == 0, result.output
    return {"data": data, "model": run / "model.safetensors", "tokenizer": tok_path, "tmp": tmp_path}


def test_sample_writes_decoded_pngs_and_a_grid(trained: dict[str, Path]) -> None:
    out = trained["tmp"] / "samples"
    result = CliRunner().invoke(
        main, ["sample", "--ckpt", str(trained["model"]), "--class", "2", "--n", "4", "--cfg-scale", "1.75", "--top-k", "8", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    tokens = np.load(out / "tokens.npy")
    assert tokens.shape == (4, 4, 4)
    decoder = load_tokenizer(trained["tokenizer"])
    with torch.no_grad():
        expected = ((decoder.decode(torch.from_numpy(tokens).long()).clamp(-1, 1) + 1) * 127.5).round().byte()
    for i in range(4):
        png = np.asarray(Image.open(out / "samples" / f"class0002_{i:04d}.png"))
        assert np.array_equal(png, expected[i].permute(1, 2, 0).numpy())
    assert sorted(p.name for p in (out / "samples").iterdir()) == [f"class0002_{i:04d}.png" for i in range(4)]  # samples only
    with np.load(out / "samples.npz") as batch:  # ADM's sample batch: arr_0 uint8 NHWC, arr_1 labels
        assert np.array_equal(batch["arr_0"], expected.permute(0, 2, 3, 1).numpy()) and list(batch["arr_1"]) == [2] * 4
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 + 2 * 18, 2 + 2 * 18, 3)  # 2x2 tiles of 16 px with 2 px padding
    record = json.loads((out / "sample.json").read_text())
    assert record["sampling"]["cfg_scale"] == 1.75 and record["samples_npz"] == "samples.npz" and record["samples_dir"] == "samples"


def test_sample_refuses_a_decoder_of_another_token_space(trained: dict[str, Path]) -> None:
    other = _tokenizer(trained["tmp"] / "other.safetensors", seed=0, codebook=64)
    result = CliRunner().invoke(
        main, ["sample", "--ckpt", str(trained["model"]), "--class", "0", "--n", "1", "--out", str(trained["tmp"] / "s"),
               "--tokenizer", str(other)]
    )
    assert result.exit_code != 0
    assert "token space" in result.output and "codebook 64" in result.output and "32" in result.output


def test_validate_reports_accuracy_and_completions(trained: dict[str, Path]) -> None:
    out = trained["tmp"] / "val"
    result = CliRunner().invoke(
        main, ["validate", "--ckpt", str(trained["model"]), "--data", str(trained["data"]), "--n", "3", "--top-k", "1", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "validate.json").read_text())
    assert metrics["token_acc"] > 0.9 and metrics["top5_acc"] >= metrics["token_acc"]
    assert metrics["completion_match"] > 0.9  # greedy completion of memorised sequences
    completions = np.load(out / "completions.npy")
    assert completions.shape == (3, 16)
    assert Image.open(out / "completions.png").size == (2 + 2 * 18, 2 + 3 * 18)


def test_sizes_lists_llamagen_counts() -> None:
    result = CliRunner().invoke(main, ["sizes"])
    assert result.exit_code == 0
    sizes_table = result.output.split("\n\n")[0]  # the presets follow after a blank line
    rows = {line.split()[0]: line.split() for line in sizes_table.splitlines()[1:]}
    assert rows["B"][1:4] == ["12", "768", "12"] and rows["B"][5] == "110.9M" and rows["XXL"][6] == "1400M"
