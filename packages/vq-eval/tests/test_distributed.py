"""Under torch.distributed (gloo, separate processes) every rank reads its share and the reduced metrics equal one process's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vq_eval import InceptionScore, evaluate_reconstruction, inception_statistics, open_images

TESTS = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_ranks(script: str, world: int, tmp_path: Path) -> None:
    """Run ``script`` as ``world`` gloo ranks (argv: rank, world, port, tmp_path) and wait for all of them."""
    path = tmp_path / "rank.py"
    path.write_text("import os, sys\nimport torch, torch.distributed as dist\ntorch.set_num_threads(1)\n" + script)
    port = str(_free_port())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}  # a shared machine
    ranks = [subprocess.Popen([sys.executable, str(path), str(r), str(world), port, str(tmp_path)], env=env) for r in range(world)]
    assert [proc.wait(timeout=120) for proc in ranks] == [0] * world


_INIT = """
rank, world, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=port)
dist.init_process_group("gloo", rank=rank, world_size=world)
"""

_STATISTICS_SCRIPT = (
    _INIT
    + """
import numpy as np
from vq_eval import FeatureStatistics, InceptionScore
x, logits = np.load(f"{out}/inputs.npz")["x"], np.load(f"{out}/inputs.npz")["logits"]
mine = np.array_split(np.arange(len(x)), world)[rank]
stats = FeatureStatistics(x.shape[1])
stats.update(x[mine])
stats.all_reduce()
score = InceptionScore(4)
score.update(torch.from_numpy(logits[mine]))
score.all_reduce()
np.savez(f"{out}/rank{rank}.npz", count=stats.count, mean=stats.mean, cov=stats.covariance, score=np.array(score.compute()))
dist.destroy_process_group()
"""
)


def test_all_reduce_across_two_processes(tmp_path: Path) -> None:
    """Two gloo ranks each feed half the samples; after all_reduce both hold the global statistics."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(203, 24)) @ rng.normal(size=(24, 24)) + 1e4
    logits = rng.normal(size=(len(x), 12))
    np.savez(tmp_path / "inputs.npz", x=x, logits=logits)
    _run_ranks(_STATISTICS_SCRIPT, 2, tmp_path)
    # rank r's k-th sample goes to split (k + r) mod 4, so the global splits are unions of per-rank splits
    halves = np.array_split(np.arange(len(x)), 2)
    expected_score = InceptionScore(4)
    for k in range(4):
        members = np.concatenate([half[(k - rank) % 4 :: 4] for rank, half in enumerate(halves)])
        part = InceptionScore(1)
        part.update(torch.from_numpy(logits[members]))
        expected_score.counts[k], expected_score.plogp_sums[k] = part.counts[0], part.plogp_sums[0]
        if expected_score.prob_sums is None:
            expected_score.prob_sums = np.zeros((4, 12))
        expected_score.prob_sums[k] = part.prob_sums[0]
    for rank in range(2):
        with np.load(tmp_path / f"rank{rank}.npz") as result:
            assert int(result["count"]) == len(x)
            np.testing.assert_allclose(result["mean"], x.mean(axis=0), rtol=1e-12)
            np.testing.assert_allclose(result["cov"], np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(result["score"], expected_score.compute(), rtol=1e-9)


_EVALUATION_SCRIPT = (
    _INIT
    + f"""
import json
sys.path.insert(0, {str(TESTS)!r})
from conftest import CheapInception, PaletteTokenizer
from vq_eval import evaluate_reconstruction, inception_statistics, open_images
folder = f"{{out}}/photos"
result = evaluate_reconstruction(
    PaletteTokenizer(), open_images(folder, batch_size=2, image_size=32), metrics=["psnr", "ssim", "rfid", "usage"], inception=CheapInception()
)
# 4 images over 3 ranks (2, 2, 0): rank 2 reads none and must still take part in the reductions
stats, score = inception_statistics(CheapInception(), open_images(folder, batch_size=2, image_size=32, limit=4), splits=2)
seen = sum(batch.shape[0] for batch in open_images(folder, batch_size=2, image_size=32))
result.update(seen=seen, count=stats.count, mean=stats.mean.tolist(), score=score.compute())
with open(f"{{out}}/rank{{rank}}.json", "w") as f:
    json.dump(result, f)
dist.destroy_process_group()
"""
)


def test_evaluation_over_three_ranks_equals_one_process(tmp_path: Path, make_photos, cheap_inception, stub_tokenizer) -> None:
    make_photos(tmp_path / "photos", 5, size=(40, 36))
    _run_ranks(_EVALUATION_SCRIPT, 3, tmp_path)
    folder = tmp_path / "photos"
    expected = evaluate_reconstruction(
        stub_tokenizer, open_images(folder, batch_size=2, image_size=32), metrics=["psnr", "ssim", "rfid", "usage"], inception=cheap_inception
    )
    first4 = torch.cat(list(open_images(folder, batch_size=4, image_size=32, limit=4)))
    stats, _ = inception_statistics(cheap_inception, [first4])
    # splits: rank r's k-th image goes to split (k + r) mod 2, so {0, 3} and {1, 2}; in one process that is order 0, 1, 3, 2
    score = InceptionScore(2)
    score.update(cheap_inception.unbiased_logits(cheap_inception.pool_features(first4[[0, 1, 3, 2]])))
    assert score.compute()[1] > 1e-3  # the two splits really differ
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(3)]
    assert [r.pop("seen") for r in results] == [2, 2, 1]  # contiguous shares of 5 images
    for result in results:
        assert result["num_images"] == 5 and result["count"] == 4
        # float32 features depend slightly on how images are batched, hence 1e-6 where they enter
        for key, rel in (("psnr", 1e-9), ("ssim", 1e-9), ("codebook_entropy", 1e-9), ("rfid", 1e-6)):
            assert result[key] == pytest.approx(expected[key], rel=rel), key
        assert result["codes_used"] == expected["codes_used"]
        np.testing.assert_allclose(result["mean"], stats.mean, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(result["score"], score.compute(), rtol=1e-6)

