"""Model structure: LlamaGen parameter counts, causality, and the KV-cached forward."""

from __future__ import annotations

import pytest
import torch

from vq_ar import LLAMAGEN_PARAMS, ARConfig, ARTransformer, ar_config, count_parameters


@pytest.mark.parametrize("size", ["B", "L", "XL", "XXL"])
def test_parameter_counts_match_llamagen(size: str) -> None:
    config = ar_config(size, vocab_size=16384, num_classes=1000, grid=(16, 16))
    count = count_parameters(config)
    assert abs(count - LLAMAGEN_PARAMS[size]) / LLAMAGEN_PARAMS[size] < 0.01, (size, count)


def test_llamagen_shapes() -> None:
    config = ar_config("B", vocab_size=16384, num_classes=1000, grid=(16, 16))
    assert (config.n_layer, config.dim, config.n_head, config.ffn_hidden) == (12, 768, 12, 2048)
    with torch.device("meta"):
        model = ARTransformer(config)
    assert model.class_embedding.weight.shape == (1001, 768)  # + null class
    assert not any("bias" in name for name, _ in model.named_parameters())
    assert model.output.weight is not model.tok_embeddings.weight


def test_tied_head_shares_the_embedding() -> None:
    config = ar_config("nano", vocab_size=64, num_classes=3, grid=(4, 4), tie_embeddings=True)
    model = ARTransformer(config)
    assert model.output.weight is model.tok_embeddings.weight
    assert count_parameters(config) == count_parameters(config.model_copy(update={"tie_embeddings": False})) - 64 * 64


@pytest.fixture
def model(random_model) -> ARTransformer:  # noqa: ANN001
    return random_model(ar_config("nano", vocab_size=40, num_classes=3, grid=(3, 4)))


def test_forward_is_causal(model: ARTransformer) -> None:
    tokens = torch.randint(0, 40, (2, 11))
    labels = torch.tensor([0, 2])
    logits = model(labels, tokens)
    assert logits.shape == (2, 12, 40) and logits.dtype == torch.float64
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 40
    other = model(labels, changed)
    torch.testing.assert_close(other[:, :7], logits[:, :7], rtol=0, atol=0)  # positions <= 6 cannot see token 6
    assert not torch.allclose(other[:, 7:], logits[:, 7:])


def test_cached_steps_equal_the_full_forward(model: ARTransformer) -> None:
    tokens = torch.randint(0, 40, (3, 11))
    labels = torch.tensor([0, 1, 3])  # 3 is the null class
    full = model(labels, tokens)
    cache = model.new_cache(3)
    # prefill class + 4 tokens, then one token at a time, then a 3-token chunk (masked prefill at start>0)
    parts = [model(labels, tokens[:, :4], cache=cache)]
    for i in range(4, 8):
        parts.append(model(None, tokens[:, i : i + 1], cache=cache, start=i + 1))
    parts.append(model(None, tokens[:, 8:11], cache=cache, start=9))
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-10, atol=1e-10)


def test_refuses_sequences_longer_than_the_grid(model: ARTransformer) -> None:
    with pytest.raises(ValueError, match="exceed"):
        model(torch.tensor([0]), torch.zeros(1, 12, dtype=torch.long))


def test_config_validation_names_the_problem() -> None:
    with pytest.raises(ValueError, match="divisible by 4"):
        ARConfig(vocab_size=8, num_classes=2, grid=(2, 2), dim=24, n_head=4, rope="2d")  # head_dim 6
    with pytest.raises(ValueError, match="2D token grid"):
        ARConfig(vocab_size=8, num_classes=2, grid=(16,), dim=32, n_head=2, rope="2d")
    with pytest.raises(ValueError, match="unknown AR size"):
        ar_config("M", vocab_size=8, num_classes=2, grid=(2, 2))


def test_a_training_step_after_sampling_works() -> None:
    """Issue 15: generate() runs under inference_mode; the rotary table it caches must not be an
    inference tensor, or the next training step fails with 'Inference tensors cannot be saved for backward'."""
    from vq_ar import SamplingConfig, generate

    torch.manual_seed(0)
    model = ARTransformer(ar_config("nano", vocab_size=32, num_classes=3, grid=(4, 4)))
    generate(model, torch.tensor([0, 1]), sampling=SamplingConfig(cfg_scale=2.0), generator=torch.Generator().manual_seed(0))
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    tokens = torch.randint(0, 32, (2, 16))
    logits = model(torch.tensor([0, 2]), tokens[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), tokens.flatten()).backward()
    optimizer.step()
    assert all(p.grad is not None for p in model.parameters())
