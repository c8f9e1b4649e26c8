"""The shared speed switches: what --precision means per device, fused Adam equal to the loop form."""

from __future__ import annotations

import click
import pytest
import torch
from click.testing import CliRunner

from vq_core.acceleration import adam, autocast, maybe_compile, speed_options, speed_overrides, uses_bf16


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [("fp32", "cpu", False), ("fp32", "cuda", False), ("bf16", "cpu", True), ("bf16", "cuda", True),
     ("auto", "cpu", False), ("auto", "cuda", True)],
)
def test_precision_resolves_per_device(precision: str, device: str, expected: bool) -> None:
    assert uses_bf16(precision, device) is expected


def test_bf16_autocast_runs_matmuls_in_bf16_on_cpu() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("bf16", "cpu"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32", "cpu"):
        assert (a @ b).dtype == torch.float32


@pytest.mark.parametrize("decoupled", [False, True])
def test_fused_adam_matches_the_per_parameter_loop(decoupled: bool) -> None:
    """Five steps of the fused optimizer vs torch's reference for-loop implementation."""
    torch.manual_seed(0)
    start = [torch.randn(7, 5), torch.randn(5)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(5)]
    results = []
    for fast in (True, False):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        kwargs = {"lr": 1e-2, "betas": (0.5, 0.9), "weight_decay": 0.05 if decoupled else 0.0}
        if fast:
            opt = adam(params, device="cpu", decoupled=decoupled, **kwargs)
            assert opt.defaults["fused"] or opt.defaults["foreach"]
        else:
            cls = torch.optim.AdamW if decoupled else torch.optim.Adam
            opt = cls(params, foreach=False, **kwargs)
        for step in grads:
            for p, g in zip(params, step):
                p.grad = g.clone()
            opt.step()
        results.append([p.detach() for p in params])
    for fast, slow in zip(*results):
        torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-6)


def test_adam_takes_param_groups_and_generators() -> None:
    params = (torch.nn.Parameter(torch.randn(3)) for _ in range(2))
    assert len(adam(params, device="cpu").param_groups[0]["params"]) == 2
    groups = [{"params": [torch.nn.Parameter(torch.randn(3))], "weight_decay": 0.1}, {"params": [torch.nn.Parameter(torch.randn(2))]}]
    assert len(adam(groups, device="cpu", decoupled=True).param_groups) == 2


def test_maybe_compile_off_returns_the_module_itself() -> None:
    module = torch.nn.Linear(2, 2)
    assert maybe_compile(module, False) is module


def test_speed_options_override_only_what_is_given() -> None:
    seen = []

    @click.command()
    @speed_options
    def cmd(precision: str | None, compile_model: bool | None) -> None:
        seen.append(speed_overrides(precision, compile_model))

    runner = CliRunner()
    for args in ([], ["--precision", "bf16"], ["--compile"], ["--no-compile", "--precision", "fp32"]):
        assert runner.invoke(cmd, args).exit_code == 0
    assert seen == [{}, {"precision": "bf16"}, {"compile": True}, {"precision": "fp32", "compile": False}]
    assert runner.invoke(cmd, ["--precision", "fp16"]).exit_code == 2
