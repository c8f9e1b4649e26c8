"""Exponential moving average of the AR model's weights (LlamaGen's ``--ema``).

LlamaGen (``utils/ema.py``, ``train_c2i.py``) starts the average at the initial weights and after every
optimizer step sets ``ema = ema * decay + weight * (1 - decay)`` for every parameter (decay 0.9999).
:class:`WeightEMA` does the same, with the same two operations in the same order, as one
multi-tensor ``_foreach`` call per step instead of a Python loop over the parameters.

A training checkpoint keeps the raw weights as the model (what training resumes) and the average
under ``state["ema"]``; the final ``model.safetensors`` of a run with EMA holds the averaged weights
(what sampling uses) - :func:`ema_weights_into` swaps them in for a checkpoint that still has both.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


class WeightEMA:
    """The moving average of a model's parameters, kept outside the model (float32 like the weights)."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.names = [name for name, _ in model.named_parameters()]
        self.shadow = [p.detach().clone() for _, p in model.named_parameters()]

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One step towards ``model``'s current weights: ``ema * decay + weight * (1 - decay)``."""
        params = [p.detach() for _, p in model.named_parameters()]
        torch._foreach_mul_(self.shadow, self.decay)
        torch._foreach_add_(self.shadow, params, alpha=1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores: the decay and one tensor per parameter name."""
        return {"decay": self.decay, "weights": dict(zip(self.names, self.shadow))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        weights = state["weights"]
        if set(weights) != set(self.names):
            raise ValueError(f"EMA state has other parameters than the model: {sorted(set(weights) ^ set(self.names))[:4]}")
        if float(state["decay"]) != self.decay:
            log.warning("resuming an EMA kept with decay %s under decay %s", state["decay"], self.decay)
        for shadow, name in zip(self.shadow, self.names):
            shadow.copy_(weights[name])

    def averaged_copy(self, model: nn.Module) -> nn.Module:
        """A copy of ``model`` (same config, eval mode) holding the averaged weights."""
        averaged = copy.deepcopy(model)
        with torch.no_grad():
            for (_, p), shadow in zip(averaged.named_parameters(), self.shadow):
                p.copy_(shadow)
        return averaged.eval()


def ema_weights_into(model: nn.Module, state: dict[str, Any]) -> bool:
    """Load the EMA weights a training checkpoint's ``state`` holds into ``model``; False when it has none."""
    ema = state.get("ema")
    if not isinstance(ema, dict) or "weights" not in ema:
        return False
    named = dict(model.named_parameters())
    missing = sorted(set(named) - set(ema["weights"]))
    if missing:
        raise ValueError(f"the checkpoint's EMA lacks parameters {missing[:4]}")
    with torch.no_grad():
        for name, p in named.items():
            p.copy_(ema["weights"][name])
    return True
