"""Linear probe: the seed's head and LARS schedule on frozen codes separate two classes of synthetic images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from vq_core import StrictConfig
from vq_eval.probe import CPU_SMALL, LARS, SEED_SCHEDULE, linear_probe, probe_features


def _two_classes(count: int, seed: int, size: int = 32) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Noisy images, class 0 reddish and class 1 bluish, in batches of 8 (labels interleaved)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % 2
    images = torch.rand(count, 3, size, size, generator=generator) * 1.4 - 0.7
    images[labels == 0, 0] += 0.3
    images[labels == 1, 2] += 0.3
    return list(zip(images.clamp(-1, 1).split(8), labels.split(8)))


def test_seed_schedule_is_the_default() -> None:
    """configs/ic/runner.py: LARSOptimizer(lr=1.6), CosineAnnealingLR(T_max=iters=30_000); interface.py: batch 512."""
    assert (SEED_SCHEDULE.lr, SEED_SCHEDULE.steps, SEED_SCHEDULE.batch_size) == (1.6, 30_000, 512)
    assert (SEED_SCHEDULE.momentum, SEED_SCHEDULE.weight_decay, SEED_SCHEDULE.trust_coefficient) == (0.9, 0.0, 0.001)
    assert CPU_SMALL.lr == SEED_SCHEDULE.lr


def test_lars_step_equals_the_formula() -> None:
    weight, bias = nn.Parameter(torch.tensor([[3.0, 4.0]])), nn.Parameter(torch.tensor([1.0]))
    weight.grad, bias.grad = torch.tensor([[0.6, 0.8]]), torch.tensor([0.5])
    LARS([weight, bias], lr=2.0, momentum=0.9, weight_decay=0.0, trust_coefficient=0.01).step()
    # matrix: lr * trust * |w| / |g| * g = 2 * 0.01 * 5 / 1 * g; vector: plain lr * g
    torch.testing.assert_close(weight.detach(), torch.tensor([[3.0 - 0.06, 4.0 - 0.08]]))
    torch.testing.assert_close(bias.detach(), torch.tensor([0.0]))


def test_probe_separates_two_classes(stub_tokenizer) -> None:
    result = linear_probe(stub_tokenizer, _two_classes(48, 0), _two_classes(32, 1), config=CPU_SMALL)
    assert result["num_classes"] == 2 and result["num_train"] == 48 and result["num_val"] == 32
    assert result["probe_top1"] == 1.0 and result["probe_top5"] == 1.0 and result["chance_top1"] == 0.5
    features, labels = probe_features(stub_tokenizer, _two_classes(8, 2))
    expected = stub_tokenizer.dequantize(stub_tokenizer.encode(_two_classes(8, 2)[0][0])).mean((2, 3))
    torch.testing.assert_close(features, expected)  # the seed's feature: grid-averaged quantized codes
    assert labels.tolist() == [0, 1] * 4


def test_probe_on_random_labels_is_near_chance(stub_tokenizer) -> None:
    """The probe measures the codes, not a leak: with labels unrelated to the images it does not beat chance by much."""
    shuffled = [(images, torch.randint(0, 2, (len(labels),), generator=torch.Generator().manual_seed(i)))
                for i, (images, labels) in enumerate(_two_classes(64, 3))]  # fmt: skip
    result = linear_probe(stub_tokenizer, shuffled[:4], shuffled[4:], config=CPU_SMALL)
    assert result["probe_top1"] <= 0.8


def test_probe_command_on_labelled_shards(tmp_path: Path, run_cli) -> None:
    from vq_data import make_source, pack
    from vq_tokenizers import Tokenizer, register_tokenizer, save_tokenizer

    class ProbePaletteConfig(StrictConfig):
        image_size: int

    @register_tokenizer
    class ProbePalette(Tokenizer):
        """Tokens = nearest of two colours per 8x8 patch; a checkpoint the CLI can load."""

        family = "vq-eval-test-probe-palette"
        config_class = ProbePaletteConfig

        def __init__(self, config: ProbePaletteConfig) -> None:
            super().__init__(config)
            self.palette = nn.Parameter(torch.tensor([[0.6, -0.6, -0.6], [-0.6, -0.6, 0.6]]))

        codebook_size = property(lambda self: 2)
        image_size = property(lambda self: self.config.image_size)
        grid = property(lambda self: (self.config.image_size // 8,) * 2)

        def encode(self, images: torch.Tensor) -> torch.Tensor:
            means = nn.functional.avg_pool2d(images, 8).permute(0, 2, 3, 1)
            return torch.cdist(means.reshape(-1, 3), self.palette).argmin(1).view(means.shape[:3])

        def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
            return self.palette[indices].permute(0, 3, 1, 2)

    ckpt = save_tokenizer(ProbePalette(ProbePaletteConfig(image_size=16)), tmp_path / "tok.pt")
    rng = np.random.default_rng(0)
    for split, count in (("train", 8), ("val", 6)):
        for cls, channel in (("red", 0), ("blue", 2)):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                image = rng.integers(60, 120, size=(16, 16, 3)).astype(np.uint8)
                image[..., channel] += 100
                Image.fromarray(image).save(folder / f"{i}.png")
        pack(make_source(str(tmp_path / split), kind="folder"), tmp_path / f"{split}-shards", samples_per_shard=8, image_size=16)
    out = tmp_path / "probe.json"
    printed = run_cli("probe", ckpt, "--train", tmp_path / "train-shards", "--val", tmp_path / "val-shards", "--preset", "cpu-small",
                      "--device", "cpu", "--out", out)  # fmt: skip
    result = json.loads(out.read_text())
    assert result["probe_top1"] == 1.0 and result["num_val"] == 12 and result["schedule"]["lr"] == pytest.approx(1.6)
    assert "probe_top5" in printed
