"""`vq-eval tokenizer CHECKPOINT SOURCE`: checkpoints saved by vq-tokenizers, metrics checked against skimage/numpy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import vq_tokenizers
from vq_core import StrictConfig
from vq_eval import open_images, to_8bit_levels


class PaletteConfig(StrictConfig):
    codebook_size: int = 16
    patch: int = 8
    image_size: int = 32


@vq_tokenizers.register_tokenizer
class PaletteEncoder(vq_tokenizers.Tokenizer):
    """A registered encoder-only family: each patch -> the nearest of ``codebook_size`` learnable colours."""

    family = "vq-eval-test-palette-encoder"
    config_class = PaletteConfig

    def __init__(self, config: PaletteConfig) -> None:
        super().__init__(config)
        self.palette = torch.nn.Parameter(torch.rand(config.codebook_size, 3, generator=torch.Generator().manual_seed(0)) * 2 - 1)

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def grid(self) -> tuple[int, int]:
        side = self.config.image_size // self.config.patch
        return side, side

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_image_size(images)
        means = torch.nn.functional.avg_pool2d(images, self.config.patch).permute(0, 2, 3, 1)
        return torch.cdist(means.reshape(-1, 3), self.palette).argmin(dim=1).view(means.shape[:3])


@vq_tokenizers.register_tokenizer
class PaletteFamily(PaletteEncoder):
    """The same codes decoded back to flat colour patches."""

    family = "vq-eval-test-palette"

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        colours = self.palette[indices].permute(0, 3, 1, 2)
        return colours.repeat_interleave(self.config.patch, 2).repeat_interleave(self.config.patch, 3)


def _direct_metrics(checkpoint: Path, folder: Path, limit: int) -> dict[str, object]:
    """What the command must report, computed image by image with skimage and numpy."""
    model = vq_tokenizers.load_tokenizer(checkpoint)
    originals = to_8bit_levels(torch.cat(list(open_images(folder, batch_size=limit, image_size=model.image_size, limit=limit))))
    with torch.no_grad():
        tokens = model.encode(originals)
        recon = to_8bit_levels(model.decode(tokens)) if model.can_decode else None
    counts = np.bincount(tokens.flatten().numpy(), minlength=model.codebook_size)
    p = counts[counts > 0] / counts.sum()
    out: dict[str, object] = {"originals": originals, "recon": recon, "counts": counts, "entropy": float(-(p * np.log(p)).sum())}
    if recon is not None:
        o, r = (x.permute(0, 2, 3, 1).double().numpy() for x in (originals, recon))
        out["psnr"] = np.mean([peak_signal_noise_ratio(a, b, data_range=2.0) for a, b in zip(o, r)])
        out["ssim"] = np.mean(
            [
                structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=2.0, channel_axis=2)
                for a, b in zip(o, r)
            ]
        )
    return out


def _check_usage(metrics: dict, expected: dict) -> None:
    counts = expected["counts"]
    assert metrics["codebook_size"] == counts.size and metrics["codes_used"] == int((counts > 0).sum())
    assert metrics["codebook_usage"] == pytest.approx((counts > 0).mean())
    assert metrics["codebook_entropy"] == pytest.approx(expected["entropy"], rel=1e-6)
    assert metrics["codebook_perplexity"] == pytest.approx(np.exp(expected["entropy"]), rel=1e-6)


def test_every_metric_of_a_registered_family(
    tmp_path: Path, make_photos, inception_weights: Path, lpips_files, run_cli
) -> None:
    checkpoint = vq_tokenizers.save_tokenizer(PaletteFamily(PaletteConfig()), tmp_path / "tok.safetensors")
    make_photos(tmp_path / "val", 4, size=(40, 36))
    backbone, linear = lpips_files
    output = run_cli(
        "tokenizer", checkpoint, tmp_path / "val", "--limit", 2, "--batch-size", 2, "--device", "cpu",
        "--inception-weights", inception_weights, "--lpips-backbone", backbone, "--lpips-weights", linear,
    )  # fmt: skip
    report_dir = tmp_path / "eval-val"  # default: next to the checkpoint
    metrics = json.loads((report_dir / "metrics.json").read_text())
    details = metrics.pop("details")
    assert details["family"] == "vq-eval-test-palette" and details["transform"].startswith("resize shorter side to 32")
    assert details["token_space"] == vq_tokenizers.load_tokenizer(checkpoint).token_space_hash()  # which weights were scored

    expected = _direct_metrics(checkpoint, tmp_path / "val", limit=2)
    assert metrics["num_images"] == 2
    assert metrics["psnr"] == pytest.approx(expected["psnr"], rel=1e-6)
    assert metrics["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
    _check_usage(metrics, expected)
    # the rFID arithmetic is checked in test_reconstruction; here: the real network ran on both sides
    assert metrics["rfid_against"] == "originals" and metrics["rfid"] > 0
    assert 0 < metrics["lpips"] and np.isfinite(metrics["lpips"])
    for key in ("psnr", "ssim", "lpips", "rfid", "codebook_usage", "codebook_perplexity", "codebook_entropy"):
        assert key in output
    assert f"report: {report_dir / 'report.html'}" in output
    assert (report_dir / "report.html").read_text().count("data:image/png;base64,") == 3
    assert {p.name for p in report_dir.glob("*.png")} == {"reconstructions.png", "codebook_usage.png", "patches_per_token.png"}


def test_tiny_vqgan_from_its_preset_on_a_shard_set(tmp_path: Path, make_photos, run_cli) -> None:
    """A real (untrained) tiny VQGAN, built from the vq-tokenizers preset, saved, and scored on vq-data image shards."""
    from vq_data import make_source, pack

    torch.manual_seed(0)
    preset = vq_tokenizers.get_preset("tiny", "vqgan")
    model = vq_tokenizers.build_tokenizer(preset.family, preset.model)
    checkpoint = vq_tokenizers.save_tokenizer(model, tmp_path / "vqgan.safetensors")
    make_photos(tmp_path / "photos", 3, size=(48, 40))
    pack(make_source(str(tmp_path / "photos"), kind="folder"), tmp_path / "val", samples_per_shard=2, image_size=32)
    output = run_cli(
        "tokenizer", checkpoint, tmp_path / "val", "--metrics", "psnr,ssim,usage", "--out-dir", tmp_path / "report", "--device", "cpu"
    )
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert metrics["details"]["source_kind"] == "shards" and metrics["details"]["family"] == "vqgan"
    expected = _direct_metrics(checkpoint, tmp_path / "val", limit=3)
    assert set(metrics) - {"details"} == {
        "num_images", "psnr", "ssim", "codebook_size", "codes_used", "codebook_usage", "codebook_entropy", "codebook_perplexity",
    }  # fmt: skip
    assert metrics["psnr"] == pytest.approx(expected["psnr"], rel=1e-5)
    assert metrics["ssim"] == pytest.approx(expected["ssim"], abs=1e-5)
    _check_usage(metrics, expected)
    assert "codebook_perplexity" in output and (tmp_path / "report" / "report.html").is_file()


def test_encoder_only_family_reports_usage_only(tmp_path: Path, make_photos, run_cli) -> None:
    checkpoint = vq_tokenizers.save_tokenizer(PaletteEncoder(PaletteConfig()), tmp_path / "enc.safetensors")
    make_photos(tmp_path / "val", 2, size=(32, 32))
    output = run_cli("tokenizer", checkpoint, tmp_path / "val", "--out-dir", tmp_path / "report", "--device", "cpu")
    assert "has no pixel decoder; reporting codebook usage only" in output
    metrics = json.loads((tmp_path / "report" / "metrics.json").read_text())
    assert "psnr" not in metrics and "rfid" not in metrics
    _check_usage(metrics, _direct_metrics(checkpoint, tmp_path / "val", limit=2))
    assert {p.name for p in (tmp_path / "report").glob("*.png")} == {"codebook_usage.png", "patches_per_token.png"}
