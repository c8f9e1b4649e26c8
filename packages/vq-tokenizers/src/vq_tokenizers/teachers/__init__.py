"""Frozen feature extractors (CLIP, ViT/DINO, DINOv2, MAE, OpenCLIP/EVA-CLIP, torchvision ViT/ConvNeXt, any saved ``nn.Module``)
behind one interface.

``transformers`` takes seconds to import, so the Hugging Face and torchvision teacher modules load on
first use (``load_teacher``, ``build_teacher`` or an attribute below): ``import vq_tokenizers`` stays
fast for the families that need no teacher.
"""

from __future__ import annotations

import importlib
from typing import Any

from vq_tokenizers.teachers.base import Teacher, TeacherConfig, TeacherError, resample_grid
from vq_tokenizers.teachers.loading import RANDOM_TEACHERS, build_teacher, load_teacher

_LAZY = {
    "HFTeacher": "vq_tokenizers.teachers.hf",
    "load_hf_teacher": "vq_tokenizers.teachers.hf",
    "TorchvisionTeacher": "vq_tokenizers.teachers.torchvision_models",
    "ModuleTeacher": "vq_tokenizers.teachers.module",
    "save_module_teacher": "vq_tokenizers.teachers.module",
    "load_module_teacher": "vq_tokenizers.teachers.module",
    "ConvNetClassifier": "vq_tokenizers.teachers.convnet",
    "fit_classifier": "vq_tokenizers.teachers.convnet",
    "load_torchvision_teacher": "vq_tokenizers.teachers.torchvision_models",
    "OpenCLIPTeacher": "vq_tokenizers.teachers.open_clip_models",
    "load_open_clip_teacher": "vq_tokenizers.teachers.open_clip_models",
}

__all__ = [
    "ConvNetClassifier",
    "HFTeacher",
    "ModuleTeacher",
    "OpenCLIPTeacher",
    "RANDOM_TEACHERS",
    "Teacher",
    "TeacherConfig",
    "TeacherError",
    "TorchvisionTeacher",
    "build_teacher",
    "fit_classifier",
    "load_hf_teacher",
    "load_module_teacher",
    "load_open_clip_teacher",
    "load_teacher",
    "load_torchvision_teacher",
    "resample_grid",
    "save_module_teacher",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
