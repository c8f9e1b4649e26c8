"""torchvision teachers: ViT (``vit_b_16`` ...) patch tokens and ConvNeXt feature maps.

A ViT yields its encoder output without the class token (after the final LayerNorm), or the token
sequence after ``layer`` blocks; a ConvNeXt yields its last feature map (stride 32) flattened
row-major to (B, h*w, C).  Weights come from a local state-dict file (what torchvision caches, e.g.
``vit_b_16-c867db91.pth``); the error for a missing file names the file torchvision would have used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from vq_tokenizers.teachers.base import IMAGENET_MEAN, IMAGENET_STD, Teacher, TeacherConfig, TeacherError

VIT_ARCHS = ("vit_b_16", "vit_b_32", "vit_l_16", "vit_l_32", "vit_h_14")
CONVNEXT_ARCHS = ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large")


def _kind_of(name: str) -> str:
    if name in VIT_ARCHS:
        return "torchvision_vit"
    if name in CONVNEXT_ARCHS:
        return "torchvision_convnext"
    raise ValueError(f"unsupported torchvision teacher {name!r}; choose one of {VIT_ARCHS + CONVNEXT_ARCHS}")


def weights_filename(name: str) -> str:
    """The file name torchvision gives the default ImageNet weights of ``name``."""
    return torchvision.models.get_model_weights(name).DEFAULT.url.rsplit("/", 1)[-1]


class TorchvisionTeacher(Teacher):
    def __init__(self, config: TeacherConfig, model: nn.Module | None = None) -> None:
        super().__init__(config)
        name = config.arch.get("name")
        if name is None or _kind_of(name) != config.kind:
            raise ValueError(f"teacher kind {config.kind!r} does not fit torchvision arch {config.arch!r}")
        self.model = model if model is not None else getattr(torchvision.models, name)(weights=None)
        if config.kind == "torchvision_vit":
            if config.image_size != self.model.image_size:
                raise ValueError(f"{name} takes {self.model.image_size} px inputs only, not image_size {config.image_size}")
            depth = len(self.model.encoder.layers)
            if config.layer is not None and not -(depth + 1) <= config.layer <= depth:
                raise ValueError(f"teacher layer {config.layer} is out of range for the {depth}-block {name}")
        else:
            if config.layer is not None:
                raise ValueError(f"{name}: ConvNeXt teachers read the last feature map; layer must be None")
            if config.image_size % 32:
                raise ValueError(f"{name}: image_size {config.image_size} is not a multiple of the stride 32")
        self.freeze()

    @property
    def stride(self) -> int:
        return self.model.patch_size if self.config.kind == "torchvision_vit" else 32

    def grid_at(self, image_size: int) -> tuple[int, int]:
        if self.config.kind == "torchvision_vit" and image_size != self.model.image_size:
            raise ValueError(
                f"{self.config.arch['name']} runs at {self.model.image_size} px only (torchvision ViTs do not interpolate "
                f"position embeddings), not {image_size}"
            )
        return super().grid_at(image_size)

    @property
    def dim(self) -> int:
        if self.config.kind == "torchvision_vit":
            return self.model.hidden_dim
        return self.model.classifier[-1].in_features

    def forward_features(self, pixels: torch.Tensor) -> torch.Tensor:
        if self.config.kind == "torchvision_convnext":
            return self.model.features(pixels).flatten(2).transpose(1, 2)
        vit = self.model
        tokens = vit._process_input(pixels)
        tokens = torch.cat([vit.class_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        layer = self.config.layer
        if layer is None:
            return vit.encoder(tokens)[:, 1:]
        depth = len(vit.encoder.layers)
        blocks = layer if layer >= 0 else depth + 1 + layer
        tokens = vit.encoder.dropout(tokens + vit.encoder.pos_embedding)
        for block in vit.encoder.layers[:blocks]:
            tokens = block(tokens)
        return tokens[:, 1:]


def load_torchvision_teacher(
    name: str, path: str | Path, *, layer: int | None = None, image_size: int | None = None
) -> TorchvisionTeacher:
    """A torchvision ViT/ConvNeXt teacher with weights from the state-dict file ``path``."""
    kind = _kind_of(name)
    path = Path(path)
    if not path.is_file():
        raise TeacherError(
            f"torchvision teacher {name}: weights file {path} does not exist; copy torchvision's "
            f"{weights_filename(name)} there (it is not downloaded)"
        )
    try:
        state: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        why = f"{type(err).__name__}: {err}"
        raise TeacherError(f"torchvision teacher {name}: {path} is not a readable state dict ({why})") from err
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    with torch.device("meta"):  # no random init of weights the file replaces anyway
        model = getattr(torchvision.models, name)(weights=None)
    try:
        model.load_state_dict(state, assign=True)
    except RuntimeError as err:
        raise TeacherError(f"torchvision teacher {name}: {path} does not hold {name} weights: {err}") from err
    size = image_size or (model.image_size if kind == "torchvision_vit" else 224)
    config = TeacherConfig(
        kind=kind, arch={"name": name}, image_size=size, layer=layer, mean=IMAGENET_MEAN, std=IMAGENET_STD, source=str(path)
    )
    return TorchvisionTeacher(config, model)
