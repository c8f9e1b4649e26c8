"""Exponential moving average of model weights, kept in fp32 beside the trained model.

Parameters are averaged; buffers (EMA codebooks, usage counters, normalisation statistics) are copied,
because averaging a codebook row that was just re-initialised from an anchor with its stale value would
yield a code no encoder output is near.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class WeightEMA:
    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must lie in [0, 1), got {decay}")
        self.decay = decay
        self._params = {name: p.detach().float().clone() for name, p in model.named_parameters()}
        # persistent buffers only: exactly the model's state dict beside its parameters
        self._buffers = {n: t.detach().clone() for n, t in model.state_dict().items() if n not in self._params}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        names = list(self._params)
        current = dict(model.named_parameters())
        torch._foreach_lerp_(
            [self._params[n] for n in names], [current[n].detach().float() for n in names], 1.0 - self.decay
        )
        state = model.state_dict()
        for name, buffer in self._buffers.items():
            buffer.copy_(state[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """A state dict in the model's own key layout (loadable with ``model.load_state_dict``)."""
        return {**self._params, **self._buffers}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in self._params:
            self._params[name].copy_(state[name])
        for name in self._buffers:
            self._buffers[name].copy_(state[name])

    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s weights with the averaged ones (dtype and device kept)."""
        reference = model.state_dict()
        model.load_state_dict({k: v.to(reference[k].dtype) for k, v in self.state_dict().items()})
