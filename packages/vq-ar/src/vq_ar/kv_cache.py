"""Static key/value cache for generation: every buffer is allocated once, before the first token.

Each layer owns one key and one value tensor of shape (batch, n_head, max_len, head_dim).  A forward
step writes its new keys/values at their sequence positions and attends over the filled prefix
``[:end]`` — a view, so no step allocates or concatenates cache memory, and the cost of a step is
one token's projections plus attention over the prefix instead of recomputing the whole prefix.
"""

from __future__ import annotations

import torch


class KVCache:
    """Per-layer key/value buffers of a fixed maximum length."""

    def __init__(
        self,
        n_layer: int,
        batch: int,
        n_head: int,
        max_len: int,
        head_dim: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        shape = (batch, n_head, max_len, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layer)]
        self.max_len = max_len
        self.batch = batch

    def write(
        self, layer: int, start: int, keys: torch.Tensor, values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (batch, n_head, L, head_dim) keys/values at ``start``; return views of the filled prefix."""
        end = start + keys.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} positions; cannot write up to {end}")
        if keys.shape[0] != self.batch:
            raise ValueError(f"KV cache was allocated for batch {self.batch}, got {keys.shape[0]}")
        self.keys[layer][:, :, start:end] = keys
        self.values[layer][:, :, start:end] = values
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]
