"""Frozen feature extractors (CLIP, ViT/DINO, DINOv2, torchvision ViT/ConvNeXt) behind one interface."""

from vq_tokenizers.teachers.base import Teacher, TeacherConfig, TeacherError, resample_grid
from vq_tokenizers.teachers.hf import HFTeacher, load_hf_teacher
from vq_tokenizers.teachers.loading import RANDOM_TEACHERS, build_teacher, load_teacher
from vq_tokenizers.teachers.torchvision_models import TorchvisionTeacher, load_torchvision_teacher

__all__ = [
    "HFTeacher",
    "RANDOM_TEACHERS",
    "Teacher",
    "TeacherConfig",
    "TeacherError",
    "TorchvisionTeacher",
    "build_teacher",
    "load_hf_teacher",
    "load_teacher",
    "load_torchvision_teacher",
    "resample_grid",
]
