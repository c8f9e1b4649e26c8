"""Shared fixtures of the vq-tokenizers tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def single_thread():
    """Run a module's tests on one intra-op thread, restoring the setting afterwards.

    The test models are tiny and gain nothing from a second thread, while on a busy 2-core machine
    OpenMP's spinning worker threads make every op up to 20x slower.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def teacher_photos(tmp_path_factory):
    """A folder of 32 40-px crops of four scikit-image photos (for the teacher-based tokenizers)."""
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    root = tmp_path_factory.mktemp("teacher_photos")
    rng = np.random.default_rng(0)
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = getattr(skdata, name)()
        for j in range(8):
            y, x = rng.integers(0, image.shape[0] - 120), rng.integers(0, image.shape[1] - 120)
            Image.fromarray(image[y : y + 120, x : x + 120]).resize((40, 40)).save(root / f"{name}_{j}.png")
    return root


@pytest.fixture
def recording_session():
    """A vq_core launch session that records what a training loop reports (file names of each checkpoint dir)."""
    from vq_core import TrainSession

    class RecordingSession(TrainSession):
        def __init__(self) -> None:
            super().__init__()
            self.reports: list[tuple[dict, list[str] | None]] = []

        def report(self, metrics, checkpoint_dir=None) -> None:
            files = sorted(p.name for p in checkpoint_dir.iterdir()) if checkpoint_dir is not None else None
            self.reports.append((dict(metrics), files))

    return RecordingSession()
