"""Cluster fitted the seed's way (configs/cluster/*: Adam on a cosine codebook + CVQVAECallback with
NearestAnchor): steps against a reference written here from the seed's code (VectorQuantizer._encode with
CosineDistance, CVQVAECallback.after_encode, CodebookLoss), the rank-merged anchors against one process
over the concatenated batch, and a fit through ``vq-tok fit-cluster --method sgd``."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from click.testing import CliRunner

from vq_tokenizers import load_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.cluster_presets import CLUSTER_PRESETS
from vq_tokenizers.cluster_sgd import cvq_update, fit_codebook_sgd

pytestmark = pytest.mark.usefixtures("single_thread")


class _FeatureTeacher:
    """Stands in for a teacher: the 'images' are already (B, N, D) features."""

    dim = 8

    def features(self, images: torch.Tensor, image_size=None) -> torch.Tensor:  # noqa: ANN001
        return images


def seed_reference(batches: list[torch.Tensor], k: int, *, lr: float, betas, seed: int) -> torch.Tensor:  # noqa: ANN001
    generator = torch.Generator().manual_seed(seed)
    e = torch.nn.Parameter(torch.empty(k, batches[0].shape[-1]).uniform_(-1.0 / k, 1.0 / k, generator=generator))
    optimizer = torch.optim.Adam([e], lr=lr, betas=betas)
    p = torch.zeros(k, dtype=torch.float64)
    for batch in batches:
        x = batch.reshape(-1, batch.shape[-1])
        with torch.no_grad():
            d = 1 - F.normalize(x) @ F.normalize(e).T  # CosineDistance
            quant = d.argmin(-1)
            frequency = quant.bincount(minlength=k) / quant.numel()
            p = p * 0.99 + frequency * (1 - 0.99)  # EMA(decay=0.99)
            anchors = x[d.argmin(0)]  # NearestAnchor
            decay = 1 - torch.exp(-p[:, None] * k * 10 / (1 - 0.99) - 1e-3)
            e.data = (e * decay + anchors * (1 - decay)).float()  # todd ema(e, anchors, decay)
        loss = ((e[quant] - x) ** 2).mean()  # CodebookLoss: mse(z, sg(x))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return e.detach()


def test_sgd_steps_match_the_seeds_quantizer_callback_and_loss() -> None:
    torch.manual_seed(0)
    batches = [torch.randn(4, 6, 8) * 3 + 1 for _ in range(5)]
    codebook, report = fit_codebook_sgd(_FeatureTeacher(), iter(batches), 16, steps=5, lr=1e-2, betas=(0.5, 0.9), seed=3)
    torch.testing.assert_close(codebook, seed_reference(batches, 16, lr=1e-2, betas=(0.5, 0.9), seed=3), rtol=1e-5, atol=1e-6)
    assert report.steps == 5 and report.features == 24 and 0 < report.usage <= 1 and math.isfinite(report.loss)


def _ddp_worker(rank: int, init_file: str, x: torch.Tensor, codebook: torch.Tensor, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    part = x.chunk(2)[rank]
    quant, usage, moved = cvq_update(codebook, torch.zeros(codebook.shape[0], dtype=torch.float64), part)
    if rank == 0:
        torch.save({"usage": usage, "moved": moved}, out)
    dist.destroy_process_group()


def test_two_ranks_update_the_codebook_as_one_process_over_both_batches(tmp_path) -> None:
    torch.manual_seed(0)
    x, codebook = torch.randn(40, 8), torch.randn(12, 8)
    args = (str(tmp_path / "init"), x, codebook, str(tmp_path / "out.pt"))
    mp.start_processes(_ddp_worker, args=args, nprocs=2, join=True, start_method="fork")  # fork: no re-import of torch
    ranks = torch.load(tmp_path / "out.pt")
    _, usage, moved = cvq_update(codebook, torch.zeros(12, dtype=torch.float64), x)
    torch.testing.assert_close(ranks["usage"], usage)
    torch.testing.assert_close(ranks["moved"], moved)


def test_fit_cluster_sgd_through_the_cli(teacher_photos, tmp_path) -> None:
    out = tmp_path / "run"
    args = ["fit-cluster", "--teacher", "random-clip:tiny", "--data", str(teacher_photos), "--out", str(out),
            "--method", "sgd", "--k", "16", "--steps", "4", "--batch-size", "4", "--lr", "1e-3", "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    fit = json.loads((out / "fit.json").read_text())
    assert fit["steps"] == 4 and math.isfinite(fit["loss"]) and fit["features"] == 4 * 16  # 4 images x 4x4 patches
    model = load_tokenizer(out / "tokenizer.safetensors")
    assert model.family == "cluster" and model.codebook_size == 16
    tokens = model.encode(torch.rand(2, 3, 32, 32) * 2 - 1)
    assert tokens.shape == (2, 4, 4) and int(tokens.max()) < 16
    assert torch.allclose(model.codebook.norm(dim=1), torch.ones(16))


def test_cluster_presets_carry_the_seeds_sgd_settings() -> None:
    for preset in CLUSTER_PRESETS.values():
        assert (preset.steps, preset.lr, preset.betas, preset.batch_size, preset.crop_scale) == (100_000, 5.4e-5, (0.5, 0.9), 256, (0.8, 1.0))
        assert (preset.image_size, preset.teacher_size, preset.k) == (256, 256, 8192)
