"""Hugging Face ``transformers`` teachers: CLIP vision towers, ViT/DINO, DINOv2 and MAE.

Patch features are the chosen hidden state without the class token: by default the model's final
output (CLIP: ``last_hidden_state``, which has no final norm; ViT/DINO and DINOv2: after their final
LayerNorm), or ``hidden_states[layer]``.  ``project=True`` (CLIP only) applies CLIP's post-LayerNorm
and visual projection to every patch token, which is the VQ-KD target of BEiT v2 (512-d for ViT-B/16);
``post_norm=True`` (CLIP only) applies the post-LayerNorm alone (the seed's Cluster CLIP features, 768-d).
MAE (``ViTMAEModel``, e.g. ``facebook/vit-mae-base``) runs unmasked: ``mask_ratio`` 0 and ascending
noise, so no patch is dropped or shuffled, and reads the final LayerNorm output as the seed's MAE teacher.
Weights load with ``local_files_only=True``: nothing is ever downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
    Dinov2Config,
    Dinov2Model,
    PretrainedConfig,
    PreTrainedModel,
    ViTConfig,
    ViTMAEConfig,
    ViTMAEModel,
    ViTModel,
)

from vq_core.hub import PretrainedNotFoundError, hf_hub_cache, is_repo_id, resolve_pretrained
from vq_tokenizers.teachers.base import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, Teacher, TeacherConfig, TeacherError

HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_VOLATILE_KEYS = {"transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"}
_CONFIG_CLASSES: dict[str, type[PretrainedConfig]] = {
    "clip": CLIPVisionConfig, "vit": ViTConfig, "dinov2": Dinov2Config, "mae": ViTMAEConfig,
}
_DEFAULT_NORM = {
    "clip": (CLIP_MEAN, CLIP_STD), "vit": (IMAGENET_MEAN, IMAGENET_STD), "dinov2": (IMAGENET_MEAN, IMAGENET_STD),
    "mae": (IMAGENET_MEAN, IMAGENET_STD),
}


def _model_class(kind: str, project: bool) -> type[PreTrainedModel]:
    if kind == "clip":
        return CLIPVisionModelWithProjection if project else CLIPVisionModel
    if project:
        raise ValueError(f"teacher kind {kind!r} has no projection head; project=True is for clip only")
    return {"vit": ViTModel, "dinov2": Dinov2Model, "mae": ViTMAEModel}[kind]


def _instantiate(cls: type[PreTrainedModel], config: PretrainedConfig) -> PreTrainedModel:
    return cls(config, add_pooling_layer=False) if cls is ViTModel else cls(config)


def arch_dict(config: PretrainedConfig) -> dict[str, Any]:
    """A Hugging Face config as plain JSON data, without the keys that change with the library version."""
    return {k: v for k, v in config.to_diff_dict().items() if k not in _VOLATILE_KEYS and not k.startswith("_")}


class HFTeacher(Teacher):
    """A ``transformers`` vision model (``self.model``) read out as patch features."""

    def __init__(self, config: TeacherConfig, model: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        cls = _model_class(config.kind, config.project)
        if config.post_norm and (config.kind != "clip" or config.project):
            raise ValueError("post_norm is for clip teachers without projection")
        hf_config = _CONFIG_CLASSES[config.kind].from_dict(dict(config.arch))
        if config.kind == "mae":
            hf_config.mask_ratio = 0.0  # a teacher sees every patch
        self.model = model if model is not None else _instantiate(cls, hf_config)
        self._hf_config = self.model.config
        depth = self._hf_config.num_hidden_layers
        if config.layer is not None and not -(depth + 1) <= config.layer <= depth:
            raise ValueError(f"teacher layer {config.layer} is out of range for a {depth}-block {config.kind} model")
        if config.image_size % self._hf_config.patch_size:
            patch = self._hf_config.patch_size
            raise ValueError(f"teacher image_size {config.image_size} is not a multiple of patch size {patch}")
        self.model.float()
        self.freeze()

    @property
    def stride(self) -> int:
        return int(self._hf_config.patch_size)

    @property
    def dim(self) -> int:
        return self._hf_config.projection_dim if self.config.project else self._hf_config.hidden_size

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        wants_hidden = self.config.layer is not None
        kwargs: dict[str, Any] = {"output_hidden_states": wants_hidden}
        if self.config.kind != "dinov2" and pixels.shape[-1] != self._hf_config.image_size:
            kwargs["interpolate_pos_encoding"] = True  # DINOv2 always interpolates
        # CLIPVisionModelWithProjection wraps the tower in `vision_model`; the other classes are the tower
        tower = getattr(self.model, "vision_model", self.model)
        if self.config.kind == "mae":  # ascending noise keeps every patch in place (mask_ratio is 0)
            patches = (pixels.shape[-2] // self.stride) * (pixels.shape[-1] // self.stride)
            kwargs["noise"] = torch.arange(patches, device=pixels.device, dtype=torch.float32).expand(pixels.shape[0], -1)
        out = tower(pixel_values=pixels, **kwargs)
        hidden = out.hidden_states[self.config.layer] if wants_hidden else out.last_hidden_state
        patches = hidden[:, 1:]
        if self.config.project:
            patches = self.model.visual_projection(tower.post_layernorm(patches))
        elif self.config.post_norm:
            patches = tower.post_layernorm(patches)
        return patches


def _cached_hub_dir(path: Path) -> tuple[Path, str]:
    """A hub id (``openai/clip-vit-base-patch16``) as its snapshot in the local HF cache, never downloaded.

    Returns the directory to load and, when the id is not cached, a note for the not-a-directory error."""
    if path.is_dir() or not is_repo_id(str(path)):
        return path, ""
    try:
        return resolve_pretrained(str(path), local_files_only=True, what="teacher"), ""
    except PretrainedNotFoundError:
        return path, f" (nor is {path} a model in the Hugging Face cache {hf_hub_cache()}: `hf download {path}` fills it)"


def _check_hf_dir(path: Path, kind: str, note: str = "") -> None:
    if not path.is_dir():
        raise TeacherError(
            f"{kind} teacher: {path} is not a directory{note}; pass a local Hugging Face model directory "
            f"(config.json + model.safetensors, e.g. saved with save_pretrained) - nothing is downloaded"
        )
    if not (path / "config.json").is_file():
        raise TeacherError(f"{kind} teacher: {path / 'config.json'} is missing; {path} is not a Hugging Face model directory")
    if not any((path / name).is_file() for name in HF_WEIGHT_FILES):
        raise TeacherError(f"{kind} teacher: no weights in {path} (expected one of {', '.join(HF_WEIGHT_FILES)})")


def _preprocessor_defaults(path: Path) -> dict[str, Any]:
    """Mean, std and input size from ``preprocessor_config.json`` when the directory has one."""
    file = path / "preprocessor_config.json"
    if not file.is_file():
        return {}
    data = json.loads(file.read_text(encoding="utf-8"))
    out: dict[str, Any] = {}
    if "image_mean" in data and "image_std" in data:
        out["mean"], out["std"] = tuple(data["image_mean"]), tuple(data["image_std"])
    crop = data.get("crop_size")
    if isinstance(crop, dict) and "height" in crop:
        out["image_size"] = int(crop["height"])
    elif isinstance(crop, int):
        out["image_size"] = crop
    return out


def _clip_vision_config(path: Path) -> CLIPVisionConfig | None:
    """The vision tower's config of a full ``CLIPModel`` directory (None for a vision-only one).

    ``CLIPModel`` keeps ``projection_dim`` at the top level; the vision config read on its own would fall
    back to the default 512 and refuse a checkpoint whose projection has another width.
    """
    data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if data.get("model_type") != "clip" or not isinstance(data.get("vision_config"), dict):
        return None
    vision = dict(data["vision_config"])
    if "projection_dim" in data:
        vision["projection_dim"] = data["projection_dim"]
    return CLIPVisionConfig(**{k: v for k, v in vision.items() if k not in _VOLATILE_KEYS and k != "model_type"})


def load_hf_teacher(
    kind: str,
    path: str | Path,
    *,
    image_size: int | None = None,
    layer: int | None = None,
    project: bool = False,
    post_norm: bool = False,
) -> HFTeacher:
    """Load a ``transformers`` teacher from a local directory (a CLIP directory may hold a full CLIPModel)
    or a hub id already in the Hugging Face cache (``clip:openai/clip-vit-base-patch16``)."""
    source = str(path)  # a hub id stays the recorded source: it resolves again on any machine with the cache
    path, note = _cached_hub_dir(Path(path))
    _check_hf_dir(path, kind, note)
    cls = _model_class(kind, project)
    kwargs: dict[str, Any] = {"add_pooling_layer": False} if cls is ViTModel else {}
    if kind == "clip" and (vision := _clip_vision_config(path)) is not None:
        kwargs["config"] = vision
    try:
        model = cls.from_pretrained(path, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise TeacherError(f"{kind} teacher: cannot load {cls.__name__} from {path} ({type(err).__name__}: {err})") from err
    if kind == "clip" and project and not hasattr(model, "visual_projection"):
        raise TeacherError(f"{path}: this CLIP checkpoint has no visual projection")
    defaults = _preprocessor_defaults(path)
    mean, std = defaults.get("mean", _DEFAULT_NORM[kind][0]), defaults.get("std", _DEFAULT_NORM[kind][1])
    size = image_size or defaults.get("image_size") or (224 if kind == "dinov2" else model.config.image_size)
    if kind == "mae":
        model.config.mask_ratio = 0.0
    config = TeacherConfig(
        kind=kind, arch=arch_dict(model.config), image_size=size, layer=layer, project=project, post_norm=post_norm,
        mean=mean, std=std, source=source,
    )
    return HFTeacher(config, model)


def random_clip_teacher(config: CLIPVisionConfig, *, seed: int, image_size: int | None = None, source: str) -> HFTeacher:
    """A randomly initialised CLIP vision tower (seeded) - for demos and tests only, its features mean nothing."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model: nn.Module = CLIPVisionModel(config)
    teacher_config = TeacherConfig(
        kind="clip", arch=arch_dict(config), image_size=image_size or config.image_size, mean=CLIP_MEAN, std=CLIP_STD,
        source=source,
    )
    return HFTeacher(teacher_config, model)
