"""Sampling against independent references: uncached recomputation, argmax, numpy nucleus/top-k."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vq_ar import ARTransformer, SamplingConfig, ar_config, filter_top_p, generate, next_token_probs


@pytest.fixture
def model(random_model) -> ARTransformer:  # noqa: ANN001
    return random_model(ar_config("nano", vocab_size=48, num_classes=5, grid=(4, 4)), std=0.25)


def _gen(model: ARTransformer, labels: torch.Tensor, seed: int = 0, **kw) -> torch.Tensor:  # noqa: ANN003
    sampling = SamplingConfig(**{k: v for k, v in kw.items() if k not in ("use_cache", "guided", "prefix")})
    extra = {k: v for k, v in kw.items() if k in ("use_cache", "guided", "prefix")}
    return generate(model, labels, sampling=sampling, generator=torch.Generator().manual_seed(seed), **extra)


SETTINGS = [
    {},
    {"temperature": 0.7, "top_k": 6},
    {"top_p": 0.85},
    {"cfg_scale": 2.5},
    {"cfg_scale": 4.0, "cfg_schedule": "linear", "top_k": 10, "top_p": 0.9},
    {"cfg_scale": 3.0, "cfg_interval": 5},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "plain")
def test_cached_and_uncached_generation_agree(model: ARTransformer, settings: dict) -> None:
    labels = torch.tensor([0, 1, 2, 3, 4, 0])
    cached = _gen(model, labels, seed=7, **settings)
    uncached = _gen(model, labels, seed=7, use_cache=False, **settings)
    assert cached.shape == (6, 16)
    assert torch.equal(cached, uncached)


def test_cached_and_uncached_agree_in_float32(random_model) -> None:  # noqa: ANN001
    model = random_model(ar_config("nano", vocab_size=48, num_classes=5, grid=(4, 4)), dtype=torch.float32)
    labels = torch.arange(5)
    assert torch.equal(_gen(model, labels, seed=3, cfg_scale=2.0), _gen(model, labels, seed=3, cfg_scale=2.0, use_cache=False))


def test_prefix_completion_keeps_the_prefix_and_agrees_uncached(model: ARTransformer) -> None:
    labels = torch.tensor([1, 3])
    prefix = torch.randint(0, 48, (2, 8))
    cached = _gen(model, labels, seed=1, prefix=prefix, cfg_scale=2.0)
    assert torch.equal(cached[:, :8], prefix)
    assert torch.equal(cached, _gen(model, labels, seed=1, prefix=prefix, cfg_scale=2.0, use_cache=False))


def test_guidance_at_scale_one_equals_conditional_sampling(model: ARTransformer) -> None:
    labels = torch.tensor([0, 1, 2, 3])
    guided = _gen(model, labels, seed=5, cfg_scale=1.0, guided=True)
    plain = _gen(model, labels, seed=5, cfg_scale=1.0, guided=False)
    assert torch.equal(guided, plain)
    assert not torch.equal(_gen(model, labels, seed=5, cfg_scale=3.0), plain)  # guidance does change samples


def test_top_k_one_is_greedy_on_the_uncached_full_forward(model: ARTransformer) -> None:
    labels = torch.tensor([0, 2, 4])
    tokens = _gen(model, labels, seed=11, top_k=1)
    with torch.no_grad():
        argmax = model(labels, tokens[:, :-1]).argmax(-1)
    assert torch.equal(tokens, argmax)


def test_guided_greedy_follows_the_guidance_formula(model: ARTransformer) -> None:
    labels, scale = torch.tensor([1, 3]), 3.0
    tokens = _gen(model, labels, seed=0, top_k=1, cfg_scale=scale)
    with torch.no_grad():
        cond = model(labels, tokens[:, :-1])
        uncond = model(torch.full_like(labels, model.null_class), tokens[:, :-1])
    assert torch.equal(tokens, (uncond + scale * (cond - uncond)).argmax(-1))


def _numpy_filtered_probs(logits: np.ndarray, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    """Brute force: a token survives top-k if fewer than k tokens beat it, top-p if the mass of the tokens
    more likely than it (after top-k) is at most p; survivors are renormalised."""
    out = np.zeros_like(logits)
    for r, row in enumerate(logits / temperature):
        keep = np.ones(row.size, dtype=bool)
        if top_k > 0:
            keep &= np.array([(row > v).sum() < top_k for v in row])
        probs = np.where(keep, np.exp(row - row.max()), 0.0)
        probs /= probs.sum()
        if top_p < 1.0:
            keep &= np.array([probs[probs > q].sum() <= top_p for q in probs])
        final = np.where(keep, np.exp(row - row.max()), 0.0)
        out[r] = final / final.sum()
    return out


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 0.9), (0.6, 0, 0.5), (1.3, 0, 0.97), (1.0, 7, 0.8), (1.0, 5, 1.0)])
def test_filters_match_a_numpy_brute_force(temperature: float, top_k: int, top_p: float) -> None:
    logits = np.random.default_rng(int(100 * top_p) + top_k).normal(scale=2.0, size=(8, 50))
    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    got = next_token_probs(torch.tensor(logits), sampling).numpy()
    expected = _numpy_filtered_probs(logits, temperature, top_k, top_p)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert ((got > 0).sum(1) < 50).all() and ((got > 0).sum(1) >= 1).all()


def test_sampled_frequencies_follow_the_filtered_distribution() -> None:
    logits = torch.tensor([[2.0, 1.5, 1.0, 0.0, -1.0, -3.0]], dtype=torch.float64)
    sampling = SamplingConfig(top_p=0.8)
    probs = next_token_probs(logits, sampling)
    draws = torch.multinomial(probs.expand(20000, -1), 1, replacement=True, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(draws[:, 0], minlength=6).double() / 20000
    assert torch.allclose(freq, probs[0], atol=0.015)
    assert freq[3:].sum() == 0  # outside the nucleus


def test_seeds_reproduce_and_differ(model: ARTransformer) -> None:
    labels = torch.tensor([0, 1, 2, 3])
    assert torch.equal(_gen(model, labels, seed=2), _gen(model, labels, seed=2))
    assert not torch.equal(_gen(model, labels, seed=2), _gen(model, labels, seed=3))


def test_cfg_schedules() -> None:
    linear = SamplingConfig(cfg_scale=3.0, cfg_schedule="linear")
    assert [linear.scale_at(i, 4) for i in range(4)] == [1.5, 2.0, 2.5, 3.0]
    interval = SamplingConfig(cfg_scale=2.0, cfg_interval=1)  # LlamaGen: prefill + decode steps 0..1
    assert [interval.scale_at(i, 4) for i in range(4)] == [2.0, 2.0, 2.0, 1.0]
    assert [SamplingConfig(cfg_scale=2.0, cfg_interval=0).guides(i) for i in range(3)] == [True, True, False]
    assert not SamplingConfig(cfg_scale=1.0).guided and SamplingConfig(cfg_scale=1.5).guided


@pytest.mark.parametrize("interval", [0, 3, 9])
def test_cfg_interval_guides_tokens_zero_to_interval_plus_one(model: ARTransformer, interval: int) -> None:
    """Greedy guided sampling against the full forward: guided argmax for tokens 0..k+1 (LlamaGen's
    prefill plus decode steps 0..k), the conditional logits' argmax after."""
    labels, scale = torch.tensor([0, 2, 4]), 6.0
    tokens = _gen(model, labels, seed=0, top_k=1, cfg_scale=scale, cfg_interval=interval)
    with torch.no_grad():
        cond = model(labels, tokens[:, :-1])
        uncond = model(torch.full_like(labels, model.null_class), tokens[:, :-1])
    guided = (uncond + scale * (cond - uncond)).argmax(-1)
    expected = torch.cat([guided[:, : interval + 2], cond.argmax(-1)[:, interval + 2 :]], dim=1)
    assert torch.equal(tokens, expected)
    assert not torch.equal(guided[:, : interval + 2], cond.argmax(-1)[:, : interval + 2])  # the guidance mattered


def test_top_p_keeps_the_same_set_as_llamagens_filter_even_at_the_boundary() -> None:
    """LlamaGen's (Hugging Face's) filter removes rank j iff cumsum(softmax(sorted))[j - 1] > p.  With p set to
    one of those cumulative masses exactly, 'mass above < p' and recomputed masses would disagree."""
    logits = torch.randn(6, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2
    for row in logits:
        sorted_logits, order = torch.sort(row, descending=True)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        for k in (0, 3, 10):
            p = float(cumulative[k])
            expected = torch.zeros(40, dtype=torch.bool)
            expected[order[: k + 2]] = True  # ranks 0..k+1: rank k+1 is removed only if cumulative[k] > p
            assert torch.equal(torch.isfinite(filter_top_p(row[None], p))[0], expected), (k, p)
