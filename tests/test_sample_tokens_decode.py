"""`vq-ar sample --tokens-only` then `vq-tok decode OUT/tokens --ckpt TOKENIZER`: sampled tokens decode with no
glue, to the images the tokenizer's own decode gives the flat tokens; another tokenizer's decoder is refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image

from vq_ar.cli import main as vq_ar
from vq_core import DatasetInfo, TokenizerInfo
from vq_data import ShardSetWriter
from vq_tokenizers import build_tokenizer, get_preset, load_tokenizer, save_tokenizer
from vq_tokenizers.cli import main as vq_tok


def _invoke(cli, *args: object) -> CliRunner:
    return CliRunner().invoke(cli, [str(a) for a in args])


def _tiny_fsq(seed: int):
    torch.manual_seed(seed)
    return build_tokenizer("fsq", get_preset("tiny", "fsq").model).eval()


def test_sampled_tokens_decode_with_vq_tok_decode(tmp_path: Path, one_thread: None) -> None:
    tokenizer = save_tokenizer(_tiny_fsq(0), tmp_path / "tok.safetensors")
    model = load_tokenizer(tokenizer)
    shards = tmp_path / "tokens"  # random tokens standing for the tokenizer's (its identity in the manifest)
    info = TokenizerInfo(name="fsq", config_hash=model.token_space_hash(), checkpoint_sha256="0" * 64, checkpoint=str(tokenizer),
                         codebook_size=model.codebook_size, grid=model.grid, dtype="int16", image_size=32)  # fmt: skip
    rng = np.random.default_rng(0)
    with ShardSetWriter(shards, kind="tokens", dataset=DatasetInfo(name="synthetic", source="tests", num_classes=2),
                        tokenizer=info, samples_per_shard=4, tool="tests", tool_version="0") as writer:  # fmt: skip
        for i in range(8):
            tokens = rng.integers(0, model.codebook_size, size=model.grid).astype(np.int16)
            writer.write({"__key__": f"s{i:03d}", "tokens.npy": tokens, "cls": i % 2, "json": {"i": i}})
    result = _invoke(vq_ar, "train", "--data", shards, "--out", tmp_path / "run", "--size", "nano", "--steps", 1,
                     "--batch-size", 4, "--no-tensorboard")  # fmt: skip
    assert result.exit_code == 0, result.output
    samples = tmp_path / "S"
    result = _invoke(vq_ar, "sample", "--ckpt", tmp_path / "run" / "model.safetensors", "--class", 0, "--class", 1,
                     "--n", 2, "--out", samples, "--tokens-only")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (samples / "grid.png").exists()

    result = _invoke(vq_tok, "decode", samples / "tokens", "--ckpt", tokenizer, "--out", tmp_path / "D")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "D").iterdir())
    assert names == ["class0000_0000.png", "class0000_0001.png", "class0001_0000.png", "class0001_0001.png"]
    flat = torch.from_numpy(np.load(samples / "tokens.npy").astype(np.int64)).flatten(1)  # (B, h*w), as generate returns
    expected = model.decode(flat).add(1).div(2).clamp(0, 1).mul(255).permute(0, 2, 3, 1).numpy()
    for image, name in zip(expected, names):
        decoded = np.asarray(Image.open(tmp_path / "D" / name), dtype=np.float64)
        assert np.abs(decoded - image).max() <= 1.0, name  # PNG rounding only

    other = save_tokenizer(_tiny_fsq(1), tmp_path / "other.safetensors")
    result = _invoke(vq_tok, "decode", samples / "tokens", "--ckpt", other, "--out", tmp_path / "E")
    assert result.exit_code != 0 and "Error:" in result.output and "token space" in result.output, result.output
