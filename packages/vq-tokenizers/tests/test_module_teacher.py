"""Module teachers: any saved nn.Module feature extractor (here the digits CNN) as a VQ-KD / Cluster teacher."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vq_data import DigitsSource
from vq_tokenizers.teachers import (
    ConvNetClassifier,
    ModuleTeacher,
    TeacherError,
    build_teacher,
    fit_classifier,
    load_teacher,
    save_module_teacher,
)


def _pixels(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = DigitsSource(split=split).arrays(16)
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1), torch.from_numpy(labels)


def test_saved_module_loads_as_a_teacher_with_its_own_features(tmp_path):
    torch.manual_seed(0)
    model = ConvNetClassifier(channels=(16, 24), stem=8).eval()
    save_module_teacher(model, tmp_path / "cnn", kwargs={"channels": [16, 24], "stem": 8}, image_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    teacher = load_teacher(f"module:{tmp_path / 'cnn'}")
    assert isinstance(teacher, ModuleTeacher) and teacher.grid == (4, 4) and teacher.dim == 24
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    # normalised with mean = std = 0.5, the teacher's input is the [-1, 1] image itself
    expected = model(images).flatten(2).transpose(1, 2)
    torch.testing.assert_close(teacher.features(images), expected, rtol=1e-5, atol=1e-5)
    rebuilt = build_teacher(teacher.config)  # what a Cluster checkpoint does: config builds, state dict fills
    rebuilt.load_state_dict(teacher.state_dict())
    torch.testing.assert_close(rebuilt.features(images), expected, rtol=1e-5, atol=1e-5)
    assert not any(p.requires_grad for p in teacher.parameters())


def test_classes_outside_the_allowed_modules_are_refused(tmp_path, monkeypatch):
    directory = save_module_teacher(ConvNetClassifier(), tmp_path / "cnn", kwargs={}, image_size=16)
    config = json.loads((directory / "teacher.json").read_text())
    for name in ("os:system", "torch.nn:Conv2d"):
        (directory / "teacher.json").write_text(json.dumps({**config, "class": name}))
        with pytest.raises(TeacherError, match="outside the allowed modules"):
            load_teacher(f"module:{directory}")
    monkeypatch.setenv("VQ_TEACHER_MODULES", "os")
    (directory / "teacher.json").write_text(json.dumps({**config, "class": "os:system"}))
    with pytest.raises(TeacherError, match="not a torch.nn.Module subclass"):
        load_teacher(f"module:{directory}")
    with pytest.raises(TeacherError, match="teacher.json is missing"):
        load_teacher(f"module:{tmp_path / 'nothing'}")


def test_cnn_classifier_learns_digits():
    pixels, labels = _pixels("train")
    torch.manual_seed(0)
    model = ConvNetClassifier(channels=(16, 32), stem=16)
    assert fit_classifier(model, pixels, labels, steps=250, batch_size=32, lr=5e-3, seed=0) >= 0.9
    held, held_labels = _pixels("heldout")
    with torch.no_grad():
        accuracy = (model.logits(held).argmax(1) == held_labels).float().mean().item()
    assert accuracy >= 0.9, accuracy
    assert np.unique(labels.numpy()).size == 10
