"""OpenCLIP and EVA02-CLIP teachers (``open_clip_torch``): the seed's ``openclip_L_14`` / ``openclip_bigG_14``
(``OpenCLIPTeacher``) and ``evaclip`` (``EVACLIPTeacher``) VQ-KD targets.

``openclip``: an open_clip ``VisionTransformer`` read as the seed reads it - ``pool_type = 'none'``,
so every token goes through ``ln_post`` and the projection, class token dropped: 768-d for ViT-L/14,
1280-d for ViT-bigG/14.  ``evaclip``: an open_clip EVA02 model (``EVA02-B-16``: a timm
``eva02_base_patch16_clip_224`` trunk), read as the trunk's normalised patch tokens without the
head (768-d for B/16); the seed reads EVA-CLIP's own ``eva_clip`` package's tower the same way.

Only the vision tower is built (on the meta device, then filled from the file), so the text tower of a
bigG checkpoint is never initialised.  Weights come from local files only:

- ``DIR``: open_clip's local-dir / Hugging Face layout, ``open_clip_config.json`` (``model_cfg``,
  ``preprocess_cfg``) + ``open_clip_model.safetensors`` (or ``open_clip_pytorch_model.bin``, ...);
- ``NAME@FILE``: an open_clip built-in model name and a weights file (``ViT-L-14@/models/open_clip_pytorch_model.bin``);
- ``NAME:TAG``: a built-in name and pretrained tag already in open_clip's Hugging Face cache
  (``ViT-L-14:laion2b_s32b_b82k``; ``cache_dir`` or ``$HF_HUB_CACHE``), looked up, never downloaded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vq_tokenizers.teachers.base import CLIP_MEAN, CLIP_STD, Teacher, TeacherConfig, TeacherError

WEIGHT_NAMES = (
    "open_clip_model.safetensors", "open_clip_pytorch_model.safetensors", "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth", "model.safetensors", "pytorch_model.bin",
)
CONFIG_NAME = "open_clip_config.json"


def _open_clip() -> Any:
    try:
        import open_clip
    except ImportError as err:  # a declared dependency; only a broken install lacks it
        raise TeacherError(f"OpenCLIP teachers need the open_clip_torch package ({err}); pip install open_clip_torch") from err
    return open_clip


def _vision_tower(arch: dict[str, Any]) -> nn.Module:
    """The visual tower open_clip's own factory builds for ``arch`` (``embed_dim``, ``vision_cfg``, ``quick_gelu``)."""
    from open_clip.model import _build_vision_tower  # the factory's builder of CLIP.visual

    vision_cfg = {**arch["vision_cfg"], "timm_model_pretrained": False}  # never fetch timm weights
    return _build_vision_tower(arch["embed_dim"], vision_cfg, quick_gelu=bool(arch.get("quick_gelu", False)))


class OpenCLIPTeacher(Teacher):
    """An open_clip vision tower (``self.visual``) read out as patch features."""

    def __init__(self, config: TeacherConfig, visual: nn.Module | None = None) -> None:
        super().__init__(config)
        _open_clip()
        from open_clip.timm_model import TimmModel
        from open_clip.transformer import VisionTransformer

        self.visual = visual if visual is not None else _vision_tower(config.arch)
        wanted = VisionTransformer if config.kind == "openclip" else TimmModel
        if not isinstance(self.visual, wanted):
            raise TeacherError(
                f"{config.kind} teacher ({config.source or config.arch.get('name')}): the model's vision tower is a "
                f"{type(self.visual).__name__}, not an open_clip {wanted.__name__}; use "
                f"{'evaclip' if config.kind == 'openclip' else 'openclip'}: for it"
            )
        if config.layer is not None:
            raise ValueError(f"{config.kind} teachers read the final tokens (the seed's); layer must be None")
        if config.kind == "openclip":
            if self.visual.attn_pool is not None:
                raise TeacherError(f"{config.source}: attention-pooled open_clip towers (CoCa) are not CLIP teachers")
            self.visual.pool_type = "none"  # the seed: every token through ln_post and the projection
        if config.image_size != self._own_size:
            raise ValueError(f"{config.kind} teacher runs at its {self._own_size} px only, not image_size {config.image_size}")
        self.visual.float()
        self.freeze()

    @property
    def _own_size(self) -> int:
        size = self.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    @property
    def stride(self) -> int:
        if self.config.kind == "openclip":
            return int(self.visual.patch_size[0])
        return int(self.visual.trunk.patch_embed.patch_size[0])

    def grid_at(self, image_size: int) -> tuple[int, int]:
        if image_size != self._own_size:
            raise ValueError(
                f"{self.config.kind} teacher runs at {self._own_size} px only (its position embeddings are fixed, as in "
                f"the seed), not {image_size}; its features are resampled to the student's grid"
            )
        return super().grid_at(image_size)

    @property
    def dim(self) -> int:
        if self.config.kind == "openclip":
            return int(self.visual.output_dim) if self.visual.proj is not None else int(self.visual.transformer.width)
        return int(self.visual.trunk.num_features)

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "openclip":
            return self.visual(pixels)[:, 1:]
        trunk = self.visual.trunk
        return trunk.forward_features(pixels)[:, trunk.num_prefix_tokens:]


# --- loading -------------------------------------------------------------------------------------
def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)  # a release pickle: tensors only
    except Exception as err:
        raise TeacherError(f"open_clip weights {path} are not a readable state dict ({type(err).__name__}: {err})") from err
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    return {k.removeprefix("module."): v for k, v in state.items()}


def _local_dir(path: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    config_file = path / CONFIG_NAME
    if not config_file.is_file():
        raise TeacherError(f"open_clip teacher: {config_file} is missing; {path} is not an open_clip model directory")
    data = json.loads(config_file.read_text(encoding="utf-8"))
    if "model_cfg" not in data:
        raise TeacherError(f"{config_file} has no model_cfg")
    weights = next((path / name for name in WEIGHT_NAMES if (path / name).is_file()), None)
    if weights is None:
        raise TeacherError(f"open_clip teacher: no weights in {path} (expected one of {', '.join(WEIGHT_NAMES)})")
    return data["model_cfg"], data.get("preprocess_cfg", {}), weights


def _builtin_config(name: str) -> dict[str, Any]:
    model_cfg = _open_clip().get_model_config(name)
    if model_cfg is None:
        raise TeacherError(f"open_clip has no built-in model {name!r}; see open_clip.list_models()")
    return model_cfg


def _cached_weights(name: str, tag: str, cache_dir: str | None) -> tuple[dict[str, Any], Path]:
    """The file of a pretrained tag in open_clip's Hugging Face cache, or an error saying what to place where."""
    from huggingface_hub import try_to_load_from_cache

    pretrained = _open_clip().get_pretrained_cfg(name, tag)
    if not pretrained:
        raise TeacherError(f"open_clip has no pretrained tag {tag!r} for {name!r}; see open_clip.list_pretrained()")
    hub = pretrained.get("hf_hub", "")
    if not hub:
        raise TeacherError(f"{name}:{tag} is published as a URL ({pretrained.get('url')}); download it and use {name}@FILE")
    repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    for candidate in names:
        found = try_to_load_from_cache(repo, candidate, cache_dir=cache_dir)
        if isinstance(found, str):
            return pretrained, Path(found)
    raise TeacherError(
        f"open_clip {name}:{tag} is not in the Hugging Face cache{f' {cache_dir}' if cache_dir else ''} (repo {repo}, "
        f"file {' or '.join(names)}); nothing is downloaded: fetch it there (huggingface-cli download {repo}) or "
        f"use {name}@FILE"
    )


def load_open_clip_teacher(kind: str, location: str, *, image_size: int | None = None, cache_dir: str | None = None) -> OpenCLIPTeacher:
    """An ``openclip`` / ``evaclip`` teacher from a local open_clip directory, ``NAME@FILE`` or cached ``NAME:TAG``."""
    path = Path(location)
    preprocess: dict[str, Any] = {}
    if path.is_dir():
        model_cfg, preprocess, weights = _local_dir(path)
        name = path.name
    elif "@" in location:
        name, _, file = location.partition("@")
        weights = Path(file)
        if not weights.is_file():
            raise TeacherError(f"{kind} teacher: weights file {weights} does not exist (nothing is downloaded)")
        model_cfg = _builtin_config(name)
    elif ":" in location:
        name, _, tag = location.partition(":")
        model_cfg = _builtin_config(name)
        preprocess, weights = _cached_weights(name, tag, cache_dir)
    else:
        raise TeacherError(
            f"{kind} teacher {location!r}: give an open_clip model directory, NAME@FILE or a cached NAME:TAG "
            f"(e.g. ViT-L-14:laion2b_s32b_b82k)"
        )
    arch = {"name": name, "embed_dim": model_cfg["embed_dim"], "vision_cfg": model_cfg["vision_cfg"],
            "quick_gelu": bool(model_cfg.get("quick_gelu", False))}
    state = {k.removeprefix("visual."): v for k, v in _read_state_dict(weights).items() if k.startswith("visual.")}
    with torch.device("meta"):  # no random init of weights the file replaces
        visual = _vision_tower(arch)
    try:
        visual.load_state_dict(state, assign=True)
        if any(t.is_meta for t in visual.buffers()):  # buffers the file does not carry (timm's rotary tables)
            visual = _vision_tower(arch)
            visual.load_state_dict(state)
    except RuntimeError as err:
        raise TeacherError(f"{kind} teacher: {weights} does not hold {name}'s vision tower: {err}") from err
    own = visual.image_size
    config = TeacherConfig(
        kind=kind, arch=arch, image_size=image_size or int(own[0] if isinstance(own, (tuple, list)) else own),
        mean=tuple(preprocess.get("mean", CLIP_MEAN)), std=tuple(preprocess.get("std", CLIP_STD)), source=str(weights),
    )
    return OpenCLIPTeacher(config, visual)
