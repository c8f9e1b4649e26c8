"""Training: memorisation, manifest refusal, exact resume (local and via a launcher session), DDP."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.distributed as dist

from vq_ar import (
    SamplingConfig,
    TrainConfig,
    ar_config,
    generate,
    load_ar,
    load_token_set,
    lr_factor,
    train,
    train_loop,
)
from vq_ar.validation import teacher_forced_metrics
from vq_core import ManifestError

NO_DROPOUT = {"token_dropout": 0.0, "resid_dropout": 0.0, "ffn_dropout": 0.0, "class_dropout": 0.0}


@pytest.fixture
def four_sequences(tmp_path: Path, write_token_shards) -> tuple[Path, np.ndarray]:  # noqa: ANN001
    """Four 4x4 sequences over a 32-token codebook, one per class, repeated to 16 samples."""
    base = np.random.default_rng(0).integers(0, 32, size=(4, 4, 4))
    directory = write_token_shards(
        tmp_path / "tokens", np.concatenate([base] * 4), np.arange(16) % 4, codebook_size=32, num_classes=4
    )
    return directory, base


def test_loss_decreases_until_the_model_memorises(tmp_path: Path, four_sequences) -> None:  # noqa: ANN001
    data, base = four_sequences
    config = TrainConfig(steps=120, batch_size=8, lr=3e-3, warmup_steps=5, log_every=10)
    result = train(data, tmp_path / "run", size="nano", model_overrides=NO_DROPOUT, config=config)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    losses = [json.loads(line)["loss"] for line in lines]
    assert losses[0] > 2.0 and losses[-1] < 0.05 and losses[-1] < losses[0] / 40
    loaded = load_ar(result.model)
    metrics = teacher_forced_metrics(loaded.model, load_token_set(data))
    assert metrics["token_acc"] == 1.0
    greedy = generate(loaded.model, torch.arange(4), sampling=SamplingConfig(top_k=1))
    assert torch.equal(greedy, torch.from_numpy(base.reshape(4, 16)))


def test_manifest_with_another_codebook_is_refused(tmp_path: Path, four_sequences) -> None:  # noqa: ANN001
    data, _ = four_sequences
    model = ar_config("nano", vocab_size=64, num_classes=4, grid=(4, 4))
    with pytest.raises(ManifestError) as err:
        train(data, tmp_path / "run", model_config=model, config=TrainConfig(steps=1, batch_size=4))
    message = str(err.value)
    assert "codebook 64" in message and "manifest says 32" in message and "manifest.json" in message


def test_existing_checkpoint_needs_resume(tmp_path: Path, four_sequences) -> None:  # noqa: ANN001
    data, _ = four_sequences
    config = TrainConfig(steps=2, batch_size=4)
    train(data, tmp_path / "run", size="nano", config=config)
    with pytest.raises(FileExistsError, match="--resume"):
        train(data, tmp_path / "run", size="nano", config=config)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_ar(path).model.state_dict()


def test_resume_continues_exactly(tmp_path: Path, four_sequences) -> None:  # noqa: ANN001
    data, _ = four_sequences
    # default LlamaGen dropouts stay on: resume must reproduce the random stream too
    config = TrainConfig(steps=6, batch_size=8, grad_accum=2, lr=1e-3, warmup_steps=2, log_every=1, ckpt_every=100)
    straight = train(data, tmp_path / "a", size="nano", config=config)
    stopped = train(data, tmp_path / "b", size="nano", config=config, stop_at=3)
    assert stopped.step == 3 and stopped.model is None
    resumed = train(data, tmp_path / "b", size="nano", config=config, resume=True)
    assert resumed.step == 6
    a, b = _weights(straight.model), _weights(resumed.model)
    assert all(torch.equal(a[k], b[k]) for k in a)
    def logged(run: str) -> list[tuple[int, float, float]]:
        lines = (tmp_path / run / "metrics.jsonl").read_text().splitlines()
        return [(m["step"], m["loss"], m["lr"]) for m in map(json.loads, lines)]

    assert logged("a") == logged("b") and len(logged("a")) == 6


class _RecordingSession:
    """What vq_core.launch gives a loop: rank info, report(), restore_dir() (here: a kept checkpoint)."""

    def __init__(self, restore: Path | None) -> None:
        self.rank, self.world_size, self.device = 0, 1, torch.device("cpu")
        self.restore = restore
        self.reports: list[tuple[dict[str, Any], list[str] | None]] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: Path | None = None) -> None:
        """Record the metrics and the names of the files a checkpoint directory holds (Ray uploads them all)."""
        files = sorted(p.name for p in checkpoint_dir.iterdir()) if checkpoint_dir is not None else None
        self.reports.append((dict(metrics), files))

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[Path | None]:
        yield self.restore


def test_train_loop_restores_what_the_launcher_kept(tmp_path: Path, four_sequences) -> None:  # noqa: ANN001
    data, _ = four_sequences
    train_config = {"steps": 4, "batch_size": 4, "log_every": 2, "ckpt_every": 2}
    loop = {"data": str(data), "size": "nano", "train": train_config}
    first = _RecordingSession(None)
    train_loop({**loop, "out": str(tmp_path / "first")}, first)
    assert [m["step"] for m, _ in first.reports] == [2, 4]
    assert all(files == ["last.safetensors"] for _, files in first.reports)  # not previous.safetensors too

    # a restarted worker on a fresh disk gets the step-4 checkpoint back and extends the run to 6 steps
    extended = {**loop, "train": {**train_config, "steps": 6}}
    second = _RecordingSession(tmp_path / "first" / "checkpoints")
    train_loop({**extended, "out": str(tmp_path / "second")}, second)
    assert [m["step"] for m, _ in second.reports] == [6]
    assert load_ar(tmp_path / "second" / "model.safetensors").step == 6


def test_lr_schedule() -> None:
    config = TrainConfig(steps=10, lr=1.0, warmup_steps=4, min_lr_ratio=0.1)
    assert [lr_factor(s, config) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, config) == pytest.approx(1.0)
    assert lr_factor(7, config) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 0.5)))
    assert lr_factor(10, config) == pytest.approx(0.1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, port: int, data: str, out: str, config: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        train(data, out, size="nano", model_overrides=NO_DROPOUT, config=TrainConfig(**config))
    finally:
        dist.destroy_process_group()


def test_ddp_two_ranks_match_one_process(tmp_path: Path, four_sequences) -> None:  # noqa: ANN001
    data, _ = four_sequences
    config = {"steps": 4, "batch_size": 8, "lr": 1e-3, "log_every": 2}
    single = train(data, tmp_path / "single", size="nano", model_overrides=NO_DROPOUT, config=TrainConfig(**config))
    port = _free_port()
    ctx = mp.get_context("fork")
    workers = [ctx.Process(target=_ddp_worker, args=(r, port, str(data), str(tmp_path / "ddp"), config)) for r in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    a, b = _weights(single.model), _weights(tmp_path / "ddp" / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)
