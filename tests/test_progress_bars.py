"""Progress bars in tokenizer training, AR sampling and the pipeline's stages: shown on a terminal,
silent when stderr is not one, and silent under ``-q`` (``VQ_PROGRESS=0``) even on a terminal."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from vq_core.progress import PROGRESS_ENV


def _terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The captured stderr claims to be a TTY (pytest's capture is not); called in the test body, where
    ``sys.stderr`` is the capturing stream the code under test writes to."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.delenv(PROGRESS_ENV, raising=False)


def _sample() -> torch.Tensor:
    from vq_ar import SamplingConfig, ar_config, build_ar_model, generate

    torch.manual_seed(0)
    model = build_ar_model(ar_config("tiny", vocab_size=16, num_classes=2, grid=(2, 3)))
    return generate(model, torch.tensor([0, 1]), sampling=SamplingConfig(), generator=torch.Generator().manual_seed(0))


def test_sampling_shows_a_bar_on_a_terminal(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    _terminal(monkeypatch)
    assert _sample().shape == (2, 6)
    err = capsys.readouterr().err
    assert "sample:" in err and "/6 [" in err


def test_quiet_and_non_terminal_runs_print_no_bar(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROGRESS_ENV, raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    quiet_tokens = _sample()  # pytest's stderr is no TTY
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setenv(PROGRESS_ENV, "0")  # what -q sets
    assert torch.equal(_sample(), quiet_tokens)  # the bar changes nothing but the terminal
    assert capsys.readouterr().err == ""


def test_tokenizer_training_shows_a_bar(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vq_tokenizers.training.job import TrainJob, train_tokenizer

    _terminal(monkeypatch)
    from PIL import Image

    (tmp_path / "images" / "noise").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(tmp_path / "images" / "noise" / f"{i}.png")
    job = TrainJob(
        family="fsq", preset="tiny", data=str(tmp_path / "images"), out=str(tmp_path / "run"),
        model={"image_size": 16}, loss={"perceptual_weight": 0.0}, train={"steps": 2, "batch_size": 2, "log_every": 1, "device": "cpu"},
    )
    train_tokenizer(job)
    err = capsys.readouterr().err
    assert "train fsq" in err and "2/2" in err
