"""``vq-pipeline run`` end to end on a micro config (bundled photos, 2 training steps per trainer, CPU).

Checks the files a run leaves, recomputes the reported PSNR and codebook usage independently
(scikit-image's PSNR on the 8-bit reconstructions of the stored images, ``torch.unique`` of their
tokens), and that a re-run skips every stage while a changed sampling setting redoes only the
stages after it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio

from vq_data import iter_samples
from vq_pipeline.cli import main
from vq_tokenizers import load_tokenizer

MICRO = {
    "seed": 0,
    "data": {"source": "bundled", "image_size": 32, "crops_per_image": 1, "samples_per_shard": 8},
    "tokenizer": {"family": "cvq", "preset": "tiny", "train": {"steps": 2, "batch_size": 4, "lr": 0.0004}},
    "tokenize": {"batch_size": 8, "samples_per_shard": 8},
    "ar": {"size": "nano", "train": {"steps": 2, "batch_size": 4, "lr": 0.001}},
    "sample": {"classes": [0, 1], "per_class": 2, "cfg_scale": 1.75},
    "eval": {"max_images": 64, "grid_images": 4},
}
STAGES = ["data", "tokenizer", "tokens", "ar", "samples", "eval"]


def _run(config: dict, tmp: Path, out: Path) -> str:
    path = tmp / f"config-{len(list(tmp.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _skipped(out: Path) -> dict[str, bool]:
    times = (out / "report" / "report.md").read_text().split("## Stage times", 1)[1].split("##", 1)[0].splitlines()
    return {name: any(line.startswith(f"| {name} | skipped") for line in times) for name in STAGES}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("pipeline")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        output = _run(MICRO, tmp, tmp / "out")
    finally:
        torch.set_num_threads(before)
    return tmp, tmp / "out", output


def test_run_writes_report_metrics_and_both_grids(run: tuple[Path, Path, str]) -> None:
    _, out, output = run
    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    for key in ("psnr", "ssim", "codebook_usage", "codebook_perplexity", "ar_loss", "tokenizer_loss"):
        assert np.isfinite(metrics[key]), key
    assert metrics["generated_images"] == 4 and metrics["train_images"] == metrics["token_samples"] == metrics["recon_images"]
    assert "psnr" in output and "sample grid" in output
    samples = Image.open(report / "samples.png")
    assert samples.size == (2 * (32 + 2) + 2, 2 * (32 + 2) + 2)  # 2 classes x 2 samples of 32 px, padded
    assert Image.open(report / "reconstructions.png").size[0] > 0
    assert len(list((out / "samples" / "images").glob("*.png"))) == 4
    html = (report / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # reconstructions, samples, loss curves, codebook usage
    markdown = (report / "report.md").read_text()
    assert "![samples](samples.png)" in markdown
    sections = [line[3:] for line in markdown.splitlines() if line.startswith("## ")]
    assert sections == ["Data", "Tokenizer", "AR model", "Samples", "Evaluation", "Stage times", "Config"]
    evaluation = markdown.split("## Evaluation", 1)[1].split("##", 1)[0]
    assert "| psnr |" in evaluation and "ar_loss" not in evaluation and "| loss |" not in evaluation  # no training internals
    ar = markdown.split("## AR model", 1)[1].split("##", 1)[0]
    assert f"| loss | {metrics['ar_loss']:.4f} |" in ar
    for name in ("loss_curves", "codebook_usage"):
        assert Image.open(report / f"{name}.png").size[0] > 0 and f"![{name}]({name}.png)" in markdown


def test_reported_psnr_and_usage_match_an_independent_computation(run: tuple[Path, Path, str]) -> None:
    _, out, _ = run
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    tokenizer = load_tokenizer(out / "tokenizer" / "tokenizer.safetensors")
    images = [np.asarray(Image.open(io.BytesIO(s["png"])).convert("RGB")) for s in iter_samples(out / "data" / "train")]
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        tokens = tokenizer.encode(pixels)
        recon = tokenizer.decode(tokens)
    recon_u8 = ((recon.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    reference = np.mean([peak_signal_noise_ratio(a, b, data_range=255) for a, b in zip(images, recon_u8)])
    assert metrics["psnr"] == pytest.approx(reference, abs=0.05)
    assert metrics["codes_used"] == int(torch.unique(tokens).numel())
    assert metrics["codebook_usage"] == pytest.approx(torch.unique(tokens).numel() / tokenizer.codebook_size)


def test_rerun_skips_finished_stages_and_redoes_changed_ones(run: tuple[Path, Path, str]) -> None:
    tmp, out, _ = run
    _run(MICRO, tmp, out)
    assert all(_skipped(out).values())
    _run({**MICRO, "sample": {**MICRO["sample"], "cfg_scale": 3.0}}, tmp, out)
    assert _skipped(out) == {"data": True, "tokenizer": True, "tokens": True, "ar": True, "samples": False, "eval": False}
