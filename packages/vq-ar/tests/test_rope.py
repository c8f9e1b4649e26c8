"""Rotary embeddings against a hand computation with explicit 2x2 rotation matrices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vq_ar import ARConfig, apply_rope, rope_table


def _config(rope: str, grid: tuple[int, ...]) -> ARConfig:
    # head_dim 8 -> 4 rotary pairs; base 100 -> frequencies 1 and 0.1 per axis in 2D
    return ARConfig(vocab_size=8, num_classes=2, grid=grid, dim=16, n_head=2, rope=rope, rope_base=100.0)


def _rotate_by_hand(x: np.ndarray, angles: list[float]) -> np.ndarray:
    out = np.empty_like(x)
    for j, a in enumerate(angles):
        rotation = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        out[2 * j : 2 * j + 2] = rotation @ x[2 * j : 2 * j + 2]
    return out


def test_2d_rope_matches_hand_computation() -> None:
    config = _config("2d", (3, 5))
    table = rope_table(config)
    assert table.shape == (2, 1 + 15, 4)
    x = np.random.default_rng(0).normal(size=8)
    token = 7  # row 1, column 2 of a 3x5 grid, sequence position 8 (after the class token)
    row, col = 1, 2
    expected = _rotate_by_hand(x, [row * 1.0, row * 0.1, col * 1.0, col * 0.1])
    got = apply_rope(torch.tensor(x)[None], table[:, 1 + token : 2 + token])[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_1d_rope_matches_hand_computation() -> None:
    config = _config("1d", (3, 5))
    x = np.random.default_rng(1).normal(size=8)
    token = 11  # raster index 11; 1D frequencies are 100 ** (-j / 4)
    expected = _rotate_by_hand(x, [token * 100 ** (-j / 4) for j in range(4)])
    got = apply_rope(torch.tensor(x)[None], rope_table(config)[:, 1 + token : 2 + token])[0].numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_class_token_is_not_rotated() -> None:
    x = torch.randn(1, 8, dtype=torch.float64)
    for rope in ("1d", "2d"):
        assert torch.equal(apply_rope(x, rope_table(_config(rope, (3, 5)))[:, :1]), x)


def test_2d_scores_depend_only_on_the_row_and_column_offset() -> None:
    config = _config("2d", (6, 6))
    table = rope_table(config)
    rng = np.random.default_rng(2)
    q, k = torch.tensor(rng.normal(size=(1, 8))), torch.tensor(rng.normal(size=(1, 8)))

    def score(a: tuple[int, int], b: tuple[int, int]) -> float:
        ia, ib = 1 + a[0] * 6 + a[1], 1 + b[0] * 6 + b[1]
        return float(apply_rope(q, table[:, ia : ia + 1]) @ apply_rope(k, table[:, ib : ib + 1]).T)

    base = score((1, 4), (0, 2))
    assert abs(score((3, 5), (2, 3)) - base) < 1e-12  # same (dy, dx) = (1, 2), shifted
    assert abs(score((1, 2), (0, 4)) - base) > 1e-3  # another offset, (1, -2)


def test_zero_class_row_is_llamagens_and_zeroes_the_class_query_and_key() -> None:
    """rope_class='zero': LlamaGen's precompute_freqs_cis_2d prepends cos = sin = 0 rows for the class token."""
    zero = rope_table(_config("2d", (3, 5)).model_copy(update={"rope_class": "zero"}))
    identity = rope_table(_config("2d", (3, 5)))
    assert torch.equal(zero[:, 0], torch.zeros(2, 4, dtype=torch.float64))
    assert torch.equal(zero[:, 1:], identity[:, 1:])  # image rows unchanged
    x = torch.randn(1, 8, dtype=torch.float64)
    assert torch.equal(apply_rope(x, zero[:, :1]), torch.zeros_like(x))


def test_sequence_1d_numbers_the_class_token_zero_and_image_token_i_as_i_plus_one() -> None:
    """rope_class='sequence': Hugging Face Llama's positions over [class] + image tokens (the seed's recipe)."""
    config = ARConfig(vocab_size=8, num_classes=2, grid=(3, 5), dim=16, n_head=2, rope="1d", rope_base=100.0, rope_class="sequence")
    table = rope_table(config)
    x = np.random.default_rng(3).normal(size=8)
    for token in (0, 11, 14):
        expected = _rotate_by_hand(x, [(token + 1) * 100 ** (-j / 4) for j in range(4)])
        got = apply_rope(torch.tensor(x)[None], table[:, 1 + token : 2 + token])[0].numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(apply_rope(torch.tensor(x)[None], table[:, :1])[0], torch.tensor(x))  # position 0: no rotation


def test_sequence_positions_need_1d_rope() -> None:
    with pytest.raises(ValueError, match="rope='1d'"):
        ARConfig(vocab_size=8, num_classes=2, grid=(3, 5), dim=16, n_head=2, rope="2d", rope_class="sequence")
