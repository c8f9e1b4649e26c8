"""The blocked nearest-code kernel against a numpy brute force, for both metrics and odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vq_core import CodebookSearch, nearest_code


def brute_force(x: np.ndarray, codes: np.ndarray, metric: str) -> tuple[np.ndarray, np.ndarray]:
    if metric == "cosine":
        c = codes / np.linalg.norm(codes, axis=1, keepdims=True)
        sims = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ c.T
        return sims.argmax(1), 1 - sims.max(1)
    d = ((x[:, None, :] - codes[None, :, :]) ** 2).sum(-1)
    return d.argmin(1), d.min(1)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize(("n", "k", "d"), [(1, 1, 3), (257, 100, 8), (1000, 4099, 16), (3, 5000, 2)])
def test_matches_brute_force(metric: str, n: int, k: int, d: int) -> None:
    rng = np.random.default_rng(n + k)
    x, codes = rng.standard_normal((n, d)), rng.standard_normal((k, d))
    idx, dist = nearest_code(torch.from_numpy(x), torch.from_numpy(codes), metric=metric, return_distances=True)
    ref_idx, ref_dist = brute_force(x, codes, metric)
    assert np.array_equal(idx.numpy(), ref_idx)
    np.testing.assert_allclose(dist.numpy(), ref_dist, rtol=1e-9, atol=1e-9)


def test_small_memory_budget_gives_the_same_answer_and_ties_go_to_the_lowest_index() -> None:
    rng = np.random.default_rng(0)
    codes = rng.standard_normal((3000, 4))
    codes[2500] = codes[7]  # an exact duplicate: argmin picks the first
    x = np.concatenate([codes[[7, 2500]], rng.standard_normal((500, 4))])
    tiny = nearest_code(torch.from_numpy(x), torch.from_numpy(codes), memory_budget=64 * 8)
    assert np.array_equal(tiny.numpy(), brute_force(x, codes, "l2")[0])
    assert tiny[0] == tiny[1] == 7


def test_fp32_search_agrees_with_fp64_on_well_separated_codes() -> None:
    torch.manual_seed(0)
    codes = torch.randn(512, 32)
    x = codes[torch.randint(512, (2000,))] + 0.01 * torch.randn(2000, 32)
    assert torch.equal(nearest_code(x, codes), nearest_code(x.double(), codes.double()))


def test_search_cache_follows_in_place_updates() -> None:
    codes = torch.randn(64, 8)
    x = torch.randn(100, 8)
    search = CodebookSearch("l2")
    before = search(x, codes)
    with torch.no_grad():
        codes.mul_(-1)
    assert torch.equal(search(x, codes), nearest_code(x, codes)) and not torch.equal(before, search(x, codes))


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="must be"):
        nearest_code(torch.randn(4, 3), torch.randn(5, 4))
    with pytest.raises(ValueError, match="metric"):
        nearest_code(torch.randn(4, 3), torch.randn(5, 3), metric="dot")  # type: ignore[arg-type]
