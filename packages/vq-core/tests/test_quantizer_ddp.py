"""Two gloo ranks with different data: codebook statistics are all-reduced and re-initialisations
broadcast, so an EMA codebook equals the single-process result on the concatenated batch and
anchor / k-means / expiry updates leave both ranks with the same codebook."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vq_core import VectorQuantizer, VectorQuantizerConfig

EMA = {"codebook_size": 32, "dim": 4, "ema": True, "ema_decay": 0.9}
ANCHORS = {"codebook_size": 32, "dim": 4, "distance": "cosine", "anchor_reinit": True, "kmeans_init": True, "expire_threshold": 0.5}


def batches(rank: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(64, 4, generator=g) + rank for _ in range(3)]


def run_steps(config: dict, data: list[torch.Tensor]) -> torch.Tensor:
    torch.manual_seed(0)
    q = VectorQuantizer(VectorQuantizerConfig(**config)).train()
    for z in data:
        q.quantize(z)
    return q.codebook.detach().clone()


def worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        for name, config in (("ema", EMA), ("anchors", ANCHORS)):
            torch.save(run_steps(config, batches(rank)), Path(out_dir) / f"{name}{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_keep_one_codebook(tmp_path: Path) -> None:
    mp.spawn(worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    ema = [torch.load(tmp_path / f"ema{r}.pt") for r in range(2)]
    anchors = [torch.load(tmp_path / f"anchors{r}.pt") for r in range(2)]
    assert torch.equal(ema[0], ema[1]) and torch.equal(anchors[0], anchors[1])
    together = [torch.cat(pair) for pair in zip(batches(0), batches(1))]
    assert torch.allclose(ema[0], run_steps(EMA, together), atol=1e-5)
    assert not torch.allclose(ema[0], run_steps(EMA, batches(0)), atol=1e-3)  # rank 1's data mattered
