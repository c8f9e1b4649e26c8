"""Any checkpointed feature extractor as a teacher: a ``torch.nn.Module`` class, its JSON kwargs, safetensors.

A *module teacher* directory holds ``teacher.json`` (the class as ``"package.module:Class"``, the keyword
arguments that build it, the input size and normalisation) and ``model.safetensors`` (its state dict).
The module's ``forward`` maps normalised pixels (B, 3, S, S) to features: a map (B, C, h, w) or tokens
(B, N, D) on a square grid.  Its grid and width are read from one forward pass at build time.

Rebuilding a class named in a file is code execution by reference, so only classes under an allowed
module prefix are built: ``vq_tokenizers.teachers.`` by default, more through the environment variable
``VQ_TEACHER_MODULES`` (comma-separated prefixes, e.g. ``mylab.models.``).  Nothing is unpickled.

Write one with :func:`save_module_teacher`; use it with the spec ``module:DIR`` (VQ-KD targets, Cluster
codebooks).  The CNN classifier of the digits study (:mod:`vq_tokenizers.teachers.convnet`) is one.
"""

from __future__ import annotations

import importlib
import json
import math
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from vq_tokenizers.teachers.base import IMAGENET_MEAN, IMAGENET_STD, Teacher, TeacherConfig, TeacherError

CONFIG_NAME = "teacher.json"
WEIGHTS_NAME = "model.safetensors"
ALLOWED_ENV = "VQ_TEACHER_MODULES"
DEFAULT_ALLOWED = ("vq_tokenizers.teachers.",)


def allowed_prefixes() -> tuple[str, ...]:
    """Module prefixes whose classes a module teacher may build (defaults plus ``$VQ_TEACHER_MODULES``)."""
    extra = tuple(p.strip() for p in os.environ.get(ALLOWED_ENV, "").split(",") if p.strip())
    return DEFAULT_ALLOWED + extra


def resolve_class(path: str) -> type[nn.Module]:
    """``"package.module:Class"`` -> the class, if its module is allowed and it is an ``nn.Module``."""
    module_name, sep, name = path.partition(":")
    if not sep or not module_name or not name:
        raise TeacherError(f"module teacher class {path!r} is not 'package.module:Class'")
    if not any(module_name.startswith(p) or f"{module_name}." == p for p in allowed_prefixes()):
        raise TeacherError(
            f"module teacher class {path!r} is outside the allowed modules {list(allowed_prefixes())}; "
            f"add its package prefix to ${ALLOWED_ENV} if you trust it"
        )
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError) as err:
        raise TeacherError(f"module teacher class {path!r} cannot be imported ({err})") from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TeacherError(f"module teacher class {path!r} is not a torch.nn.Module subclass")
    return cls


def _as_tokens(features: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) maps -> (B, h*w, C) row-major tokens; (B, N, D) tokens pass through."""
    if features.ndim == 4:
        return features.flatten(2).transpose(1, 2)
    if features.ndim == 3:
        return features
    raise ValueError(f"a module teacher's forward must return (B, C, h, w) or (B, N, D) features, got {tuple(features.shape)}")


class ModuleTeacher(Teacher):
    """A teacher around any feature-extracting ``nn.Module`` described by ``config.arch``:
    ``{"class": "package.module:Class", "kwargs": {...}}``."""

    def __init__(self, config: TeacherConfig, model: nn.Module | None = None) -> None:
        super().__init__(config)
        if "class" not in config.arch:
            raise ValueError(f"module teacher arch needs 'class' (and 'kwargs'), got {sorted(config.arch)}")
        cls = resolve_class(config.arch["class"])
        self.model = model if model is not None else cls(**dict(config.arch.get("kwargs", {})))
        if config.layer is not None:
            raise ValueError("module teachers return their forward output; layer must be None")
        with torch.no_grad():
            probe = _as_tokens(self.model.eval()(torch.zeros(1, 3, config.image_size, config.image_size)))
        side = math.isqrt(probe.shape[1])
        if side * side != probe.shape[1]:
            raise ValueError(f"module teacher {config.arch['class']} yields {probe.shape[1]} tokens, not a square grid")
        self._grid, self._dim = (side, side), int(probe.shape[2])
        self.freeze()

    @property
    def grid(self) -> tuple[int, int]:
        return self._grid

    @property
    def dim(self) -> int:
        return self._dim

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        return _as_tokens(self.model(pixels))


def save_module_teacher(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    kwargs: dict[str, Any],
    image_size: int,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
) -> Path:
    """Write ``model`` (built as ``type(model)(**kwargs)``) as a module teacher directory; returns it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cls = type(model)
    config = {
        "class": f"{cls.__module__}:{cls.__qualname__}", "kwargs": kwargs, "image_size": image_size,
        "mean": list(mean), "std": list(std),
    }
    resolve_class(config["class"])  # refuse to write what could not be loaded
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(directory / WEIGHTS_NAME))
    (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return directory


def load_module_teacher(directory: str | os.PathLike[str], *, image_size: int | None = None) -> ModuleTeacher:
    """A frozen :class:`ModuleTeacher` from a directory written by :func:`save_module_teacher`."""
    directory = Path(directory)
    config_file, weights = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for file in (config_file, weights):
        if not file.is_file():
            raise TeacherError(f"module teacher: {file} is missing; write the directory with save_module_teacher")
    try:
        data = json.loads(config_file.read_text(encoding="utf-8"))
        arch = {"class": str(data["class"]), "kwargs": dict(data.get("kwargs", {}))}
        config = TeacherConfig(
            kind="module", arch=arch, image_size=image_size or int(data["image_size"]),
            mean=tuple(data.get("mean", IMAGENET_MEAN)), std=tuple(data.get("std", IMAGENET_STD)), source=str(directory),
        )
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise TeacherError(f"module teacher: {config_file} is not a valid teacher config ({err})") from err
    model = resolve_class(arch["class"])(**arch["kwargs"])
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as err:
        raise TeacherError(f"module teacher: {weights} does not fit {arch['class']}({arch['kwargs']}): {err}") from err
    return ModuleTeacher(config, model)
