"""Quantizers against independent references: brute-force nearest neighbour, the FSQ formula,
vector-quantize-pytorch's FSQ, and properties of the training-time codebook updates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vq_core import (
    FSQ,
    LFQ,
    FSQConfig,
    LFQConfig,
    ResidualVQ,
    ResidualVQConfig,
    VectorQuantizer,
    VectorQuantizerConfig,
)


def vq(**kw) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(VectorQuantizerConfig(**{"codebook_size": 64, "dim": 8, **kw}))


@pytest.mark.parametrize("distance", ["l2", "cosine"])
def test_indices_are_the_brute_force_nearest_code(distance: str) -> None:
    q = vq(distance=distance).eval()
    z = torch.randn(3, 8, 5, 4)
    z_q, idx, _ = q.quantize(z)
    x = z.permute(0, 2, 3, 1).reshape(-1, 8).double().numpy()
    c = q.codebook.detach().double().numpy()
    if distance == "cosine":
        x, c = x / np.linalg.norm(x, axis=1, keepdims=True), c / np.linalg.norm(c, axis=1, keepdims=True)
    expected = ((x[:, None] - c[None]) ** 2).sum(-1).argmin(1)
    assert idx.shape == (3, 5, 4) and idx.dtype == torch.int64
    assert np.array_equal(idx.reshape(-1).numpy(), expected)
    np.testing.assert_allclose(z_q.permute(0, 2, 3, 1).reshape(-1, 8).numpy(), c[expected], rtol=1e-5, atol=1e-6)


def test_dequantize_round_trips_in_both_layouts_with_projection() -> None:
    q = vq(codebook_dim=4, distance="cosine").eval()
    for z in (torch.randn(2, 8, 3, 3), torch.randn(10, 8)):
        z_q, idx, _ = q.quantize(z)
        assert torch.allclose(q.dequantize(idx), z_q, atol=1e-6)
        assert z_q.shape == z.shape


def test_straight_through_gradient_and_losses() -> None:
    q = vq(beta=0.5).train()
    z = torch.randn(4, 8, requires_grad=True)
    z_q, idx, aux = q.quantize(z)
    z_q.sum().backward(retain_graph=True)
    assert torch.equal(z.grad, torch.ones_like(z))  # identity gradient through the quantizer
    codes = q.codebook.detach()[idx]
    mse = F.mse_loss(z.detach(), codes)
    assert torch.allclose(aux["loss"], 1.5 * mse) and torch.allclose(aux["commit_loss"], mse)
    z.grad = None
    aux["loss"].backward()
    assert q.codebook.grad is not None and q.codebook.grad.abs().sum() > 0


def test_bf16_autocast_keeps_fp32_math() -> None:
    q = vq().eval()
    z = torch.randn(64, 8)
    ref = q.quantize(z)[1]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        z_q, idx, _ = q.quantize(z)
    assert torch.equal(idx, ref)


def test_ema_codebook_moves_to_the_mean_of_its_inputs() -> None:
    q = vq(ema=True, ema_decay=0.5).train()
    assert not q.codebook.requires_grad
    z = torch.randn(256, 8)
    idx = q.quantize(z)[1]
    counts = torch.bincount(idx, minlength=64).float()
    sums = torch.zeros(64, 8).index_add_(0, idx, z)
    init = torch.empty(0)
    torch.manual_seed(0)
    init = VectorQuantizer(VectorQuantizerConfig(codebook_size=64, dim=8)).codebook.detach()
    ema_count, ema_sum = 0.5 + 0.5 * counts, 0.5 * init + 0.5 * sums
    n = ema_count.sum()
    expected = ema_sum / ((ema_count + 1e-5) / (n + 64 * 1e-5) * n)[:, None]
    assert torch.allclose(q.codebook, expected, atol=1e-5)


def test_kmeans_init_fits_the_first_batch() -> None:
    torch.manual_seed(0)
    centers = torch.randn(8, 8) * 5
    z = centers[torch.randint(8, (800,))] + 0.01 * torch.randn(800, 8)
    q = VectorQuantizer(VectorQuantizerConfig(codebook_size=8, dim=8, kmeans_init=True)).train()
    assert not bool(q.initialized)
    q.quantize(z)
    assert bool(q.initialized)
    assert torch.cdist(centers, q.codebook.detach()).min(1).values.max() < 0.05


def test_anchor_reinit_revives_dead_codes_and_leaves_used_codes_in_place() -> None:
    torch.manual_seed(0)
    q = vq(distance="cosine", anchor_reinit=True).train()
    with torch.no_grad():
        q.codebook[1:] = torch.tensor([-1.0] + [0.0] * 7)  # 63 codes far from the data
        q.codebook[0] = torch.tensor([1.0] + [0.0] * 7)
        q.usage_ema.zero_()
        q.usage_ema[0] = 1.0
    z = torch.randn(512, 8).abs()  # all data on the positive side
    before = F.normalize(q.codebook.detach(), dim=1).clone()
    q.quantize(z)
    after = F.normalize(q.codebook.detach(), dim=1)
    assert torch.allclose(after[0], before[0], atol=1e-6)  # a used code barely moves
    assert (after[1:] @ F.normalize(z, dim=1).mean(0)).min() > 0.5  # dead codes now sit in the data


def test_expired_codes_are_replaced_by_batch_vectors() -> None:
    q = vq(expire_threshold=1.0).train()
    with torch.no_grad():
        q.usage_ema.zero_()
    z = torch.randn(128, 8) + 100
    idx = q.quantize(z)[1]
    rows = {tuple(r.tolist()) for r in z}
    # one code takes the whole batch (count 128 x (1 - decay) = 1.28 >= 1 survives); the other 63 expire
    assert torch.unique(idx).numel() == 1
    replaced = [tuple(c.tolist()) in rows for c in q.codebook.detach()]
    assert sum(replaced) == 63 and not replaced[int(idx[0])]


def test_expired_codes_stay_revived_under_the_ema_update() -> None:
    q = vq(ema=True, ema_decay=0.99, expire_threshold=1.0).train()
    with torch.no_grad():
        q.usage_ema.zero_()
    z = torch.randn(128, 8) + 100
    q.quantize(z)
    revived = q.codebook.detach().clone()
    q.quantize(z)  # no code is dead now: the EMA step alone must not pull revived codes back to init
    assert (q.codebook.detach() - revived).norm(dim=1).max() < 1.0
    assert q.codebook.detach().mean() > 50


def test_large_codebook_search_fits_and_matches_a_chunked_brute_force() -> None:
    q = VectorQuantizer(VectorQuantizerConfig(codebook_size=262144, dim=8)).eval()
    z = torch.randn(64, 8)
    idx = q.quantize(z)[1]
    best = torch.cat([torch.cdist(z.double(), c.double()) for c in q.codebook.detach().split(65536)], dim=1).argmin(1)
    assert torch.equal(idx, best)


def test_meta_device_forward_has_no_host_sync() -> None:
    with torch.device("meta"):
        q = VectorQuantizer(VectorQuantizerConfig(codebook_size=64, dim=8, anchor_reinit=True, distance="cosine"))
        z_q, idx, aux = q.quantize(torch.randn(2, 8, 4, 4))
    assert idx.shape == (2, 4, 4) and aux["loss"].shape == ()


def test_config_refuses_a_projection_to_the_same_width() -> None:
    with pytest.raises(ValueError, match="codebook_dim equals dim"):
        VectorQuantizerConfig(codebook_size=4, dim=8, codebook_dim=8)
    with pytest.raises(ValueError, match="expected"):
        vq().quantize(torch.randn(2, 7, 3, 3))


# --- FSQ ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [(8, 8, 5, 5, 5), (8, 8, 8, 5, 5, 5), (7, 5, 4)])
def test_fsq_matches_vector_quantize_pytorch(levels: tuple[int, ...]) -> None:
    from vector_quantize_pytorch import FSQ as ReferenceFSQ

    torch.manual_seed(0)
    x = torch.randn(16, 50, len(levels)) * 2
    ref_codes, ref_idx = ReferenceFSQ(levels=list(levels)).eval()(x)
    z_q, idx, _ = FSQ(FSQConfig(levels=levels)).quantize(x.reshape(-1, len(levels)))
    assert torch.equal(idx.reshape(ref_idx.shape), ref_idx.long())
    assert torch.equal(z_q.reshape(ref_codes.shape), ref_codes)


def test_fsq_codebook_sizes_and_exact_mixed_radix_round_trip() -> None:
    assert FSQ(FSQConfig(levels=(8, 8, 5, 5, 5))).codebook_size == 8000
    fsq = FSQ(FSQConfig(levels=(8, 8, 8, 5, 5, 5)))
    assert fsq.codebook_size == 64000
    every = torch.arange(64000)
    codes = fsq.indices_to_codes(every)
    assert torch.equal(fsq.codes_to_indices(codes), every)
    assert len({tuple(c.tolist()) for c in codes}) == 64000
    # the formula by hand: digit i = (index // prod(levels[:i])) % levels[i], code = (digit - L//2) / (L//2)
    index, levels = 12345, (8, 8, 8, 5, 5, 5)
    digits = [(index // math.prod(levels[:i])) % levels[i] for i in range(6)]
    assert codes[index].tolist() == [(d - lv // 2) / (lv // 2) for d, lv in zip(digits, levels)]
    z_q, idx, _ = fsq.quantize(torch.randn(2, 6, 3, 3) * 3)
    assert torch.equal(fsq.dequantize(idx), z_q)


def test_fsq_levels_must_be_at_least_two() -> None:
    with pytest.raises(ValueError, match=">= 2"):
        FSQConfig(levels=(8, 1))


# --- LFQ and residual VQ --------------------------------------------------------------------------
def test_lfq_indices_are_sign_bits() -> None:
    lfq = LFQ(LFQConfig(dim=5))
    z = torch.randn(7, 5, 2, 2)
    z_q, idx, aux = lfq.quantize(z)
    bits = (z > 0).long().permute(0, 2, 3, 1)
    assert torch.equal(idx, (bits * torch.tensor([1, 2, 4, 8, 16])).sum(-1))
    assert torch.equal(lfq.dequantize(idx), torch.sign(z)) and lfq.codebook_size == 32
    assert aux["loss"].ndim == 0


def test_residual_vq_reduces_error_with_depth_and_round_trips() -> None:
    torch.manual_seed(0)
    z = torch.randn(500, 8)
    errors = []
    for depth in (1, 3):
        torch.manual_seed(0)
        rvq = ResidualVQ(ResidualVQConfig(quantizer=VectorQuantizerConfig(codebook_size=32, dim=8, kmeans_init=True), depth=depth)).train()
        rvq.quantize(z)  # k-means init of every stage on its residual
        z_q, idx, _ = rvq.eval().quantize(z)
        assert idx.shape == (500, depth) and torch.allclose(rvq.dequantize(idx), z_q, atol=1e-5)
        errors.append(float(F.mse_loss(z_q, z)))
    assert errors[1] < 0.8 * errors[0]
