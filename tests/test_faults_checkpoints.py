"""Fault injection for checkpoints and trainers, through every CLI that loads or writes one.

* A crafted pickle (its ``__reduce__`` touches a marker file) handed to each loading entry point:
  nothing runs, and the refusal is one line naming the file.
* A huge learning rate in the tokenizer and the AR trainer: the run stops with one line naming the
  newest checkpoint verified finite, and no file holds NaN/inf weights.
* ``vq-ar sample`` of a checkpoint with NaN weights: one line naming it.
* A truncated newest checkpoint and a torn ``metrics.jsonl`` line: resume falls back to the checkpoint
  before (saying so), the log reads as one run, and the result equals an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import click
import pytest
import torch
from click.testing import CliRunner, Result
from safetensors import safe_open
from safetensors.torch import save_file

from vq_ar.cli import main as ar_main
from vq_core import load_checkpoint, nonfinite_tensors
from vq_core.cli import main as core_main
from vq_core.divergence import state_tensors
from vq_eval.cli import main as eval_main
from vq_tokenizers import train_tokenizer
from vq_tokenizers.cli import main as tok_main


class Payload:
    """Unpickling this touches ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - pickle protocol
        return (os.system, (f"touch {self.marker}",))


def _one_line_error(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, (result.exit_code, result.output)
    message = result.output.strip()
    assert len(message.splitlines()) == 1 and message.startswith("Error: "), message
    assert "Traceback" not in message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, tokenized_world) -> dict[str, Path]:  # noqa: ANN001
    """Images, a tiny VQGAN, its token shards, a 2-step AR run and a hostile checkpoint."""
    tmp = tmp_path_factory.mktemp("ckpt_faults")
    built = tokenized_world(tmp, {"tok": 0}, ar_tokens="tok", ar_flags=("--ckpt-every", "1"))
    evil = tmp / "evil.safetensors"  # a pickle dressed up with our extension
    torch.save({"format": 1, "model": {}, "state": {"x": Payload(tmp / "MARKER")}}, evil)
    return {"tmp": tmp, "images": built["images"], "tokenizer": built["tok"], "tokens": built["tokens_tok"], "ar": built["ar"], "evil": evil}


def _resume_dir_with(evil: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(evil, target)
    return target


Case = Callable[[dict[str, Path]], tuple[click.Group, list[str]]]
ENTRY_POINTS: dict[str, Case] = {
    "vq-core checkpoint": lambda w: (core_main, ["checkpoint", str(w["evil"])]),
    "vq-tok tokenize": lambda w: (tok_main, ["tokenize", str(w["images"]), "--ckpt", str(w["evil"]), "--out", str(w["tmp"] / "t")]),
    "vq-tok decode": lambda w: (tok_main, ["decode", str(w["tokens"]), "--ckpt", str(w["evil"]), "--out", str(w["tmp"] / "d")]),
    "vq-tok reconstruct": lambda w: (
        tok_main, ["reconstruct", str(w["images"] / "a" / "0.png"), "--ckpt", str(w["evil"]), "--out", str(w["tmp"] / "r.png")]
    ),
    "vq-tok train --init-from": lambda w: (
        tok_main, ["train", "--family", "vqgan", "--data", str(w["images"]), "--out", str(w["tmp"] / "init"), "--steps", "1",
                   "--batch-size", "4", "--init-from", str(w["evil"])],
    ),
    "vq-tok train --resume": lambda w: (
        tok_main, ["train", "--family", "vqgan", "--data", str(w["images"]), "--out",
                   str(_resume_dir_with(w["evil"], w["tmp"] / "tokres" / "step_00000001.safetensors").parent),
                   "--steps", "2", "--batch-size", "4", "--resume"],
    ),
    "vq-tok train-pixel-decoder --tokenizer": lambda w: (
        tok_main, ["train-pixel-decoder", "--tokenizer", str(w["evil"]), "--preset", "tiny", "--data", str(w["images"]),
                   "--out", str(w["tmp"] / "pix")],
    ),
    "vq-tok convert taming": lambda w: (tok_main, ["convert", "taming", str(w["evil"]), "--out", str(w["tmp"] / "c1.safetensors")]),
    "vq-tok convert llamagen": lambda w: (tok_main, ["convert", "llamagen", str(w["evil"]), "--out", str(w["tmp"] / "c2.safetensors")]),
    "vq-tok convert beit": lambda w: (tok_main, ["convert", "beit", str(w["evil"]), "--out", str(w["tmp"] / "c3.safetensors")]),
    "vq-ar sample --ckpt": lambda w: (ar_main, ["sample", "--ckpt", str(w["evil"]), "--class", "0", "--n", "1", "--out", str(w["tmp"] / "s1")]),
    "vq-ar sample --tokenizer": lambda w: (
        ar_main, ["sample", "--ckpt", str(w["ar"] / "model.safetensors"), "--tokenizer", str(w["evil"]), "--class", "0", "--n", "1",
                  "--out", str(w["tmp"] / "s2")],
    ),
    "vq-ar validate --ckpt": lambda w: (
        ar_main, ["validate", "--ckpt", str(w["evil"]), "--data", str(w["tokens"]), "--n", "1", "--out", str(w["tmp"] / "v")]
    ),
    "vq-ar train --resume": lambda w: (
        ar_main, ["train", "--data", str(w["tokens"]), "--out",
                  str(_resume_dir_with(w["evil"], w["tmp"] / "arres" / "checkpoints" / "last.safetensors").parents[1]),
                  "--size", "nano", "--steps", "2", "--batch-size", "4", "--resume"],
    ),
    "vq-eval tokenizer": lambda w: (eval_main, ["tokenizer", str(w["evil"]), str(w["images"]), "--out-dir", str(w["tmp"] / "e")]),
}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_a_pickle_payload_never_runs(world: dict[str, Path], entry: str, one_thread: None) -> None:
    group, args = ENTRY_POINTS[entry](world)
    result = CliRunner().invoke(group, args)
    named = {"vq-tok train --resume": "step_00000001.safetensors", "vq-ar train --resume": "last.safetensors"}
    message = _one_line_error(result, named.get(entry, "evil.safetensors"))
    assert not (world["tmp"] / "MARKER").exists(), f"{entry} ran the payload"
    if "convert" in entry:
        assert "posix.system" in message and "--trust-pickle" in message
    else:
        assert "pickle" in message and "vq-core checkpoint upgrade" in message


def _all_finite(path: Path) -> bool:
    ckpt = load_checkpoint(path)
    return not nonfinite_tensors(ckpt.model) and not nonfinite_tensors(state_tensors(ckpt.state))


def _check_divergence(message: str, out: Path) -> None:
    """The named checkpoint is finite; so is every checkpoint the run left."""
    assert "not finite" in message and "--lr" in message
    if "No finite checkpoint was written yet" not in message:
        named = Path(message.split("Newest finite checkpoint (verified): ")[1].split(";")[0])
        assert named.is_file() and _all_finite(named)
    written = sorted(out.rglob("*.safetensors"))
    assert all(_all_finite(p) for p in written), written


@pytest.mark.parametrize("lr", ["1e30", "inf"])
def test_tokenizer_trainer_stops_on_divergence(world: dict[str, Path], tmp_path: Path, lr: str, one_thread: None) -> None:
    out = tmp_path / "tok"
    result = CliRunner().invoke(
        tok_main, ["train", "--family", "vqgan", "--data", str(world["images"]), "--out", str(out), "--steps", "4", "--batch-size", "4",
                   "--lr", lr, "--train-set", "ckpt_every=1", "--train-set", "log_every=1"],
    )  # fmt: skip
    _check_divergence(_one_line_error(result, "step "), out)
    assert not (out / "tokenizer.safetensors").exists()


@pytest.mark.parametrize("lr", ["1e30", "inf"])
def test_ar_trainer_stops_on_divergence(world: dict[str, Path], tmp_path: Path, lr: str, one_thread: None) -> None:
    out = tmp_path / "ar"
    result = CliRunner().invoke(
        ar_main, ["train", "--data", str(world["tokens"]), "--out", str(out), "--size", "nano", "--steps", "4", "--batch-size", "4",
                  "--lr", lr, "--ckpt-every", "1", "--log-every", "1"],
    )  # fmt: skip
    _check_divergence(_one_line_error(result, "step "), out)
    assert not (out / "model.safetensors").exists()


def test_sample_refuses_nonfinite_weights(world: dict[str, Path], tmp_path: Path, one_thread: None) -> None:
    source = world["ar"] / "model.safetensors"
    with safe_open(source, framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    name = next(k for k, v in tensors.items() if v.is_floating_point() and not k.startswith("state/"))
    tensors[name][0] = float("nan")  # what an old run or another tool could have left
    broken = tmp_path / "nan.safetensors"
    save_file(tensors, broken, metadata=metadata)
    result = CliRunner().invoke(ar_main, ["sample", "--ckpt", str(broken), "--class", "0", "--n", "1", "--out", str(tmp_path / "s")])
    _one_line_error(result, str(broken), "NaN/inf", name)


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _tear(metrics: Path) -> None:
    with open(metrics, "a", encoding="utf-8") as handle:
        handle.write('{"step": 9, "loss": 0.')  # a kill in the middle of a write


def _steps(metrics: Path) -> list[float]:
    return [json.loads(line)["step"] for line in metrics.read_text().splitlines()]


def test_tokenizer_resume_falls_back_past_a_truncated_checkpoint(world: dict[str, Path], tmp_path: Path, caplog, one_thread: None) -> None:  # noqa: ANN001
    job = {"family": "vqgan", "preset": "tiny", "data": str(world["images"]),
           "train": {"batch_size": 4, "log_every": 1, "ckpt_every": 1, "sample_every": 100}}  # fmt: skip
    torch.use_deterministic_algorithms(True)
    try:
        train_tokenizer({**job, "out": str(tmp_path / "straight"), "train": {**job["train"], "steps": 3}})
        train_tokenizer({**job, "out": str(tmp_path / "b"), "train": {**job["train"], "steps": 2}})
        _truncate(tmp_path / "b" / "step_00000002.safetensors")
        _tear(tmp_path / "b" / "metrics.jsonl")
        with caplog.at_level(logging.WARNING):
            train_tokenizer({**job, "out": str(tmp_path / "b"), "train": {**job["train"], "steps": 3}, "resume": True})
    finally:
        torch.use_deterministic_algorithms(False)
    assert any("step_00000002.safetensors" in r.message and "falling back" in r.message for r in caplog.records)
    assert _steps(tmp_path / "b" / "metrics.jsonl") == [1.0, 2.0, 3.0]
    a, b = (load_checkpoint(tmp_path / run / "tokenizer.safetensors").model for run in ("straight", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ar_resume_falls_back_past_a_truncated_checkpoint(world: dict[str, Path], tmp_path: Path, caplog, one_thread: None) -> None:  # noqa: ANN001
    common = ["--data", str(world["tokens"]), "--size", "nano", "--steps", "3", "--batch-size", "4", "--log-every", "1", "--ckpt-every", "1"]
    runner = CliRunner()
    assert runner.invoke(ar_main, ["train", "--out", str(tmp_path / "straight"), *common]).exit_code == 0
    assert runner.invoke(ar_main, ["train", "--out", str(tmp_path / "b"), *common, "--stop-at", "2"]).exit_code == 0
    last = tmp_path / "b" / "checkpoints" / "last.safetensors"
    _truncate(last)
    _tear(tmp_path / "b" / "metrics.jsonl")
    with caplog.at_level(logging.WARNING):
        result = runner.invoke(ar_main, ["train", "--out", str(tmp_path / "b"), *common, "--resume"])
    assert result.exit_code == 0, result.output
    assert any("previous.safetensors" in r.message and "last.safetensors" in r.message for r in caplog.records)
    assert (last.parent / "last.safetensors.damaged").is_file()
    assert _steps(tmp_path / "b" / "metrics.jsonl") == [1, 2, 3]
    a, b = (load_checkpoint(tmp_path / run / "model.safetensors").model for run in ("straight", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tokenize_refuses_a_tokenizer_with_nonfinite_weights(world: dict[str, Path], tmp_path: Path, one_thread: None) -> None:
    with safe_open(world["tokenizer"], framework="pt") as handle:
        metadata = handle.metadata()
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    name = next(k for k, v in tensors.items() if v.is_floating_point() and "encoder" in k)
    tensors[name].fill_(float("inf"))
    broken = tmp_path / "inf.safetensors"
    save_file(tensors, broken, metadata=metadata)
    result = CliRunner().invoke(tok_main, ["tokenize", str(world["images"]), "--ckpt", str(broken), "--out", str(tmp_path / "t")])
    _one_line_error(result, str(broken), "NaN/inf", name)
    assert not (tmp_path / "t" / "manifest.json").exists()
