"""Rotary position embeddings, 1D (raster index) or 2D (row and column), over interleaved pairs.

Rotary pair ``j`` of a head is the channels ``(2j, 2j+1)``, rotated by ``angle = position * freq_j``.
In 2D the first half of the pairs rotate with the token's row and the second half with its column
(LlamaGen's layout), so attention scores depend on the (dy, dx) offset between two tokens rather
than on their distance in raster order.

Sequence index 0 is the class token; ``ARConfig.rope_class`` chooses its row:

* ``"zero"`` - cos = sin = 0 (LlamaGen's ``precompute_freqs_cis_2d``): the class token's query and
  key are zeroed, so every query gives the class token the score 0 and the class token attends only
  to itself; its value still reaches every token.  LlamaGen weights need this row.
* ``"identity"`` - no rotation, image tokens numbered from 0: the class token's attention stays
  content-based.  The project's original variant and the field's default.
* ``"sequence"`` (1D only) - RoPE over the raster sequence, class at position 0 and image token i
  at i + 1, as Hugging Face Llama numbers positions (the seed's ``LlamaForCausalLM``).  Scores between
  image tokens are the same as with ``"identity"`` (RoPE is relative); only the offset to the class
  token differs by one.  (Hugging Face pairs channel j with j + head_dim/2 instead of 2j with 2j+1: a
  fixed permutation of the query/key channels, so the same model when trained from scratch.)
"""

from __future__ import annotations

import torch

from vq_ar.config import ARConfig


def _inverse_frequencies(num: int, base: float) -> torch.Tensor:
    """``base ** (-j / num)`` for j < num, in float64 so tables are exact to float32 precision."""
    return base ** (-torch.arange(num, dtype=torch.float64) / num)


def rope_angles(config: ARConfig) -> torch.Tensor:
    """Rotation angles (1 + seq_len, head_dim // 2): row 0 is the class token, row 1 + i image token i.

    Row 0 is all zeros; :func:`rope_table` turns it into cos = sin = 0 for ``rope_class="zero"``.
    """
    pairs = config.head_dim // 2
    index = torch.arange(config.seq_len, dtype=torch.float64)
    if config.rope_class == "sequence":
        index = index + 1
    if config.rope == "1d":
        angles = index[:, None] * _inverse_frequencies(pairs, config.rope_base)[None, :]
    else:
        width = config.grid[1]
        rows, cols = torch.div(index, width, rounding_mode="floor"), index % width
        freqs = _inverse_frequencies(pairs // 2, config.rope_base)
        angles = torch.cat([rows[:, None] * freqs[None, :], cols[:, None] * freqs[None, :]], dim=1)
    return torch.cat([torch.zeros(1, pairs, dtype=torch.float64), angles])


def rope_table(config: ARConfig) -> torch.Tensor:
    """Stacked (cos, sin) table of shape (2, 1 + seq_len, head_dim // 2), float64."""
    angles = rope_angles(config)
    table = torch.stack([angles.cos(), angles.sin()])
    if config.rope_class == "zero":
        table[:, 0] = 0.0
    return table


def apply_rope(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., L, head_dim) by ``table`` (2, L, head_dim // 2) in the table's precision."""
    cos, sin = table[0], table[1]
    pairs = x.to(table.dtype).unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([even * cos - odd * sin, odd * cos + even * sin], dim=-1)
    return rotated.flatten(-2).type_as(x)
