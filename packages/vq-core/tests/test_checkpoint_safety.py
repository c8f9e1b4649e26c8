"""Fault tests of checkpoint loading: no pickle runs, foreign files load only through the allowlist,
damaged files are refused in one line naming them, tied weights are stored once, files follow the umask."""

from __future__ import annotations

import argparse
import fractions
import os
import pickle
import stat
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors import safe_open
from safetensors.torch import save_file

from vq_core import (
    CheckpointError,
    StrictConfig,
    UntrustedCheckpointError,
    atomic_write_text,
    load_checkpoint,
    load_foreign_checkpoint,
    nonfinite_tensors,
    save_checkpoint,
    upgrade_checkpoint,
)
from vq_core.cli import main


class Cfg(StrictConfig):
    width: int = 3


class Payload:
    """Unpickling this touches ``marker``: what a hostile checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.marker}",))


def hostile_files(tmp_path: Path) -> tuple[Path, list[Path]]:
    """The same code-running payload as a zip torch.save, a legacy torch.save, a bare pickle, and a
    torch.save named like ours (torch 2.14's ``torch.load`` would pick a reader by that extension)."""
    marker = tmp_path / "MARKER"
    evil = {"format": 1, "family": "vqgan", "config": {}, "config_hash": "x", "model": {}, "step": 0, "state": {"x": Payload(marker)}}
    zipped, legacy, bare = tmp_path / "evil.pt", tmp_path / "evil_legacy.pt", tmp_path / "evil.pkl"
    torch.save(evil, zipped)
    torch.save(evil, legacy, _use_new_zipfile_serialization=False)
    bare.write_bytes(pickle.dumps(evil))
    disguised = tmp_path / "evil.safetensors"
    torch.save(evil, disguised)
    return marker, [zipped, legacy, bare, disguised]


def test_the_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    """Guards the other tests: the marker does appear under a plain unpickle."""
    marker, (zipped, *_) = hostile_files(tmp_path)
    torch.load(zipped, weights_only=False)
    assert marker.exists()


def test_load_checkpoint_never_unpickles(tmp_path: Path) -> None:
    marker, files = hostile_files(tmp_path)
    for path in files:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message
        assert f"vq-core checkpoint upgrade {path}" in message and "--trust-pickle" in message
    assert not marker.exists()


def test_foreign_loader_refuses_payloads_naming_the_globals(tmp_path: Path) -> None:
    marker, files = hostile_files(tmp_path)
    for path in files:
        with pytest.raises(UntrustedCheckpointError) as info:
            load_foreign_checkpoint(path)
        message = str(info.value)
        assert "\n" not in message and str(path) in message and "--trust-pickle" in message
        if path.suffix != ".pkl":  # torch.save files name the global; a bare pickle fails on its opcode
            assert "posix.system" in message
    assert not marker.exists()


def test_upgrade_refuses_a_payload_without_trust(tmp_path: Path) -> None:
    marker, files = hostile_files(tmp_path)
    for path in files:
        result = CliRunner().invoke(main, ["checkpoint", "upgrade", str(path), str(tmp_path / "new.safetensors")])
        assert result.exit_code == 1 and result.output.count("\n") == 1 and "--trust-pickle" in result.output
        shown = CliRunner().invoke(main, ["checkpoint", str(path)])
        assert shown.exit_code == 1 and shown.output.count("\n") == 1 and "upgrade" in shown.output
    assert not marker.exists() and not (tmp_path / "new.safetensors").exists()


def test_foreign_releases_load_through_the_allowlist(tmp_path: Path) -> None:
    # LlamaGen / BEiT: training args as an argparse.Namespace, numpy values next to the weights
    llamagen = tmp_path / "vq_ds16_c2i.pt"
    args = argparse.Namespace(lr=1e-4, image_size=256, betas=(0.9, 0.95), name="VQ-16")
    torch.save({"model": {"w": torch.ones(2)}, "args": args, "steps": 7, "rng": np.random.get_state(), "fid": np.float64(2.5)}, llamagen)
    payload = load_foreign_checkpoint(llamagen)
    assert payload["args"] == args and payload["steps"] == 7 and payload["fid"] == 2.5
    assert torch.equal(payload["model"]["w"], torch.ones(2))

    # taming: a Lightning .ckpt whose callbacks dict is keyed by the ModelCheckpoint class
    names = ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint"]
    fake = {name: types.ModuleType(name) for name in names}
    callback = type("ModelCheckpoint", (), {"__module__": names[-1]})
    fake[names[-1]].ModelCheckpoint = callback  # type: ignore[attr-defined]
    sys.modules.update(fake)
    try:
        taming = tmp_path / "last.ckpt"
        torch.save({"state_dict": {"w": torch.zeros(3)}, "global_step": 5, "callbacks": {callback: {"best_model_score": torch.tensor(1.0)}}}, taming)
    finally:
        for name in names:
            del sys.modules[name]
    payload = load_foreign_checkpoint(taming)
    assert payload["global_step"] == 5 and torch.equal(payload["state_dict"]["w"], torch.zeros(3))
    assert "pytorch_lightning" not in sys.modules  # the stand-in key never imports Lightning


def test_trust_pickle_lifts_the_allowlist(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    torch.save({"ratio": fractions.Fraction(1, 3)}, path)
    with pytest.raises(UntrustedCheckpointError, match="fractions.Fraction"):
        load_foreign_checkpoint(path)
    assert load_foreign_checkpoint(path, trust_pickle=True) == {"ratio": fractions.Fraction(1, 3)}


def test_upgrade_converts_an_old_format_checkpoint(tmp_path: Path) -> None:
    """What the pre-safetensors ``save_checkpoint`` wrote: a torch.save dict with format 1."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    rng = np.random.get_state()
    old = tmp_path / "old.pt"
    state = {"optimizer": opt.state_dict(), "rng": {"numpy": rng, "torch": torch.get_rng_state()}}
    torch.save({"format": 1, "family": "tiny", "config": {"width": 3}, "config_hash": Cfg().config_hash(), "model": model.state_dict(),
                "step": 4, "state": state}, old)
    result = CliRunner().invoke(main, ["checkpoint", "upgrade", str(old), str(tmp_path / "new.safetensors")])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(tmp_path / "new.safetensors", family="tiny")
    assert ckpt.step == 4 and ckpt.config == {"width": 3} and ckpt.config_hash == Cfg().config_hash()
    assert torch.equal(ckpt.model["weight"], model.weight.detach())
    assert np.array_equal(ckpt.state["rng"]["numpy"][1], rng[1]) and ckpt.state["rng"]["numpy"][0] == "MT19937"
    torch.optim.Adam(model.parameters()).load_state_dict(ckpt.state["optimizer"])
    again = CliRunner().invoke(main, ["checkpoint", "upgrade", str(tmp_path / "new.safetensors"), str(tmp_path / "x.safetensors")])
    assert again.exit_code == 1 and "already a safetensors file" in again.output


def test_damaged_and_foreign_safetensors_are_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ok.safetensors", family="t", config=Cfg(), model={"w": torch.randn(64)}, state={"t": torch.ones(3)})
    data = path.read_bytes()
    cases = {
        "tail.safetensors": data[:-40],  # data cut short
        "head.safetensors": data[:30],  # header cut short
        "empty.safetensors": b"",
        "text.safetensors": b"hello, not a checkpoint at all",
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / name)
        assert name in str(info.value) and "\n" not in str(info.value)
    save_file({"w": torch.ones(2)}, tmp_path / "hf.safetensors", metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a vq checkpoint.*vq-tok convert"):
        load_checkpoint(tmp_path / "hf.safetensors")


def test_metadata_is_plain_json_any_tool_can_read(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.safetensors", family="t", config=Cfg(), model={"w": torch.ones(2)}, step=3,
                           state={"optimizer": {"param_groups": [{"lr": 0.1, "params": [0]}]}})
    with safe_open(path, framework="pt") as handle:
        meta = handle.metadata()
        assert sorted(handle.keys()) == ["w"]
    assert meta["format"] == "vq-checkpoint" and meta["family"] == "t" and meta["step"] == "3"
    assert '"lr": 0.1' in meta["state"] and meta["config"] == '{"width": 3}'


class Tied(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(5, 4)
        self.head = torch.nn.Linear(4, 5, bias=False)
        self.head.weight = self.embed.weight


def test_tied_weights_are_stored_once_and_load_back(tmp_path: Path) -> None:
    model = Tied()
    base = torch.arange(12.0)
    state = {"view_a": base[:6], "view_b": base[6:], "same": base[:6]}  # overlapping storage in the state too
    path = save_checkpoint(tmp_path / "t.safetensors", family="t", config=Cfg(), model=model.state_dict(), state=state)
    with safe_open(path, framework="pt") as handle:
        assert "embed.weight" in handle.keys() and "head.weight" not in handle.keys()
    ckpt = load_checkpoint(path)
    assert list(ckpt.model) == list(model.state_dict())
    fresh = Tied()
    fresh.load_state_dict(ckpt.model)
    assert torch.equal(fresh.head.weight, model.embed.weight) and fresh.head.weight is fresh.embed.weight
    assert torch.equal(ckpt.state["view_b"], base[6:]) and torch.equal(ckpt.state["same"], base[:6])


def test_nonfinite_tensors_names_them() -> None:
    tensors = {"ok": torch.ones(2), "nan": torch.tensor([0.0, float("nan")]), "inf": torch.tensor(float("inf")), "ints": torch.arange(3)}
    assert nonfinite_tensors(tensors) == ["nan", "inf"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_written_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        ckpt = save_checkpoint(tmp_path / "c.safetensors", family="t", config=Cfg(), model={"w": torch.ones(1)})
        atomic_write_text(tmp_path / "r.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(ckpt.stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == mode
    assert not list(tmp_path.glob(".*.tmp"))


def test_upgrade_refuses_to_overwrite_its_input(tmp_path: Path) -> None:
    old = tmp_path / "old.pt"
    torch.save({"format": 1}, old)
    with pytest.raises(CheckpointError, match="another file"):
        upgrade_checkpoint(old, old)
