"""Speed switches every trainer shares: bf16 autocast, ``torch.compile`` and fused Adam/AdamW.

One definition so that ``--precision`` and ``--compile`` mean the same in ``vq-tok train``,
``train-vqkd``, ``train-pixel-decoder`` and ``vq-ar train``:

* ``precision`` - ``fp32``; ``bf16`` (autocast to bfloat16 on CPU and CUDA: matmuls and convolutions in
  bf16, weights, gradients and optimizer moments stay fp32 - "fp32 master weights" - and quantizer
  distances and losses stay fp32, see ``vq_core.quantizers.layout.full_precision``); ``auto`` = bf16 on
  CUDA, fp32 on CPU (a CPU without native bf16 matmuls would run slower under autocast).
* ``compile`` - wrap the network in ``torch.compile`` (inductor).  The wrapper shares the module's
  parameters, so checkpoints are still written from the plain module (no ``_orig_mod.`` keys).
* optimizers - the fused single-kernel Adam/AdamW on CUDA, the multi-tensor ``foreach`` form elsewhere;
  never the per-parameter loop.  torch's fused CPU kernel was measured to break bit-exact resume (a run
  resumed from a checkpoint drifted in the last bits from the uninterrupted one, which the tokenizer and AR
  trainers guarantee on CPU), so CPU keeps ``foreach``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import click

if TYPE_CHECKING:  # torch is imported inside the functions: `vq-* --help` must not wait for it
    import torch

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound=Callable[..., Any])


def uses_bf16(precision: str, device: torch.device | str) -> bool:
    """Whether ``precision`` means bf16 autocast on ``device`` (``auto``: on CUDA only)."""
    import torch

    device = torch.device(device)
    return precision == "bf16" or (precision == "auto" and device.type == "cuda")


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager[Any]:
    """The autocast context of ``precision`` on ``device`` (a no-op context for fp32)."""
    import torch

    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(precision, device))


def _fused_supported(device: torch.device) -> bool:
    """Fused Adam on CUDA; CPU keeps foreach (bit-exact resume, see the module docstring)."""
    return device.type == "cuda"


def adam(
    params: Iterable[Any], *, device: torch.device | str, decoupled: bool = False, **kwargs: Any
) -> torch.optim.Optimizer:
    """``Adam`` (or ``AdamW`` with ``decoupled=True``): fused on CUDA, foreach elsewhere.

    The fused kernel updates every parameter in one pass (no per-tensor Python loop, no temporaries);
    its result equals the loop form's to float rounding.
    """
    import torch

    device = torch.device(device)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    params = list(params)  # a generator would be spent by a failed fused attempt
    if _fused_supported(device):
        try:
            return cls(params, fused=True, **kwargs)
        except (RuntimeError, TypeError):  # a build without the fused kernel for this device or dtype
            pass
    return cls(params, foreach=True, **kwargs)


def maybe_compile(module: M, enabled: bool, *, mode: str | None = None) -> M:
    """``torch.compile(module)`` (a module or a function) when ``enabled``, else ``module`` itself.

    A compiled module shares the parameters of ``module``: save and load through the original."""
    import torch

    if not enabled:
        return module
    return torch.compile(module, mode=mode)  # type: ignore[return-value]


def speed_options(command: F) -> F:
    """Add ``--precision {auto,fp32,bf16}`` and ``--compile/--no-compile`` to a training command.

    Both default to None ("the preset's value"), so a flag only overrides what it names.
    """
    command = click.option(
        "--compile/--no-compile",
        "compile_model",
        default=None,
        help="torch.compile the model/loss step (default: the preset's, off)",
    )(command)
    command = click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=None,
        help="bf16: autocast on CPU and CUDA (fp32 weights); auto: bf16 on CUDA only (default: the preset's, auto)",
    )(command)
    return command


def speed_overrides(precision: str | None, compile_model: bool | None) -> dict[str, Any]:
    """The train-config overrides ``--precision`` / ``--compile`` ask for (only the flags given)."""
    out: dict[str, Any] = {}
    if precision is not None:
        out["precision"] = precision
    if compile_model is not None:
        out["compile"] = compile_model
    return out
