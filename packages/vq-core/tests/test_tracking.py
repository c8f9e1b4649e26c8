"""vq_core.tracking: metrics.jsonl and the TensorBoard event file hold the same numbers; rank 0 only; W&B opt-in."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from vq_core.tracking import MetricsLogger, TrackingFields, tracking_overrides


def tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files under ``directory``, read by TensorBoard's own loader."""
    acc = EventAccumulator(str(directory))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_event_file_equals_metrics_jsonl(tmp_path) -> None:
    logger = MetricsLogger(tmp_path, TrackingFields())
    for step in (1, 2, 3):
        logger.log({"step": float(step), "loss": 1.0 / step, "lr": 1e-3 * step})
    logger.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert set(scalars) == {"loss", "lr"}
    for tag, points in scalars.items():
        assert [s for s, _ in points] == [int(m["step"]) for m in lines]
        assert [v for _, v in points] == pytest.approx([m[tag] for m in lines], rel=1e-6)


def test_resumed_run_purges_the_steps_it_logs_again(tmp_path) -> None:
    first = MetricsLogger(tmp_path, TrackingFields())
    for step in (1, 2, 3, 4):
        first.log({"step": step, "loss": 10.0 + step})
    first.close()
    resumed = MetricsLogger(tmp_path, TrackingFields())  # resumed from the step-2 checkpoint
    for step in (3, 4):
        resumed.log({"step": step, "loss": 20.0 + step})
    resumed.close()
    assert tensorboard_scalars(tmp_path / "tensorboard")["loss"] == [(1, 11.0), (2, 12.0), (3, 23.0), (4, 24.0)]


def test_disabled_rank_and_no_tensorboard_write_nothing_extra(tmp_path) -> None:
    MetricsLogger(tmp_path / "rank1", TrackingFields(), enabled=False).log({"step": 1, "loss": 1.0})
    assert not (tmp_path / "rank1").exists()
    MetricsLogger(tmp_path / "off", TrackingFields(tensorboard=False)).log({"step": 1, "loss": 1.0})
    assert sorted(p.name for p in (tmp_path / "off").iterdir()) == ["metrics.jsonl"]


def test_wandb_without_the_package_is_a_one_line_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "wandb" else object())
    with pytest.raises(RuntimeError, match="pip install wandb"):
        MetricsLogger(tmp_path, TrackingFields(wandb=True))
    with pytest.raises(click.UsageError, match="--wandb needs the wandb package"):
        tracking_overrides(None, True)
    assert tracking_overrides(False, None) == {"tensorboard": False}


def test_wandb_receives_the_logged_scalars(tmp_path, monkeypatch) -> None:
    import sys
    import types

    calls: list = []

    class Run:
        def log(self, data, step):
            calls.append((step, data))

        def finish(self):
            calls.append("finish")

    fake = types.SimpleNamespace(init=lambda **kw: calls.append(kw["project"]) or Run())
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: object())
    logger = MetricsLogger(tmp_path, TrackingFields(wandb=True, tensorboard=False, wandb_project="p"))
    logger.log({"step": 5, "loss": 0.5})
    logger.close()
    assert calls == ["p", (5, {"loss": 0.5}), "finish"]
