"""The interface every tokenizer family implements, and the registry that rebuilds them from checkpoints.

Images are float tensors (B, 3, H, W) in [-1, 1]; tokens are integer grids (B, h, w).  Families
register their (config class, model class) pair so :func:`load_tokenizer` can rebuild any model from a
checkpoint alone.  ``token_space_hash`` identifies the *token space* (config + encoder and codebook
weights): a pixel decoder trained on frozen VQ-KD tokens decodes the same token space, so token shards
made by either are interchangeable, while shards of any other tokenizer - even one of the same preset
with other weights - are refused.
"""

from __future__ import annotations

import functools
import importlib
import os
from pathlib import Path
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn

from vq_core import Checkpoint, CheckpointError, StrictConfig, load_checkpoint, nonfinite_tensors, save_checkpoint
from vq_core.hub import HubMixin, read_pretrained
from vq_tokenizers.inputs import as_image_batch, as_token_grid
from vq_tokenizers.token_space import weights_digest


class Tokenizer(nn.Module, HubMixin):
    """Base class: ``encode`` images to token grids and (where the family can) ``decode`` them back.

    ``save_pretrained(dir)`` / ``Tokenizer.from_pretrained(dir or hub id)`` / ``push_to_hub(repo)`` come from
    :class:`vq_core.hub.HubMixin`: ``Tokenizer.from_pretrained`` rebuilds whichever family the folder holds,
    ``VQGAN.from_pretrained`` insists on a VQGAN.
    """

    family: ClassVar[str]
    config_class: ClassVar[type[StrictConfig]]
    hub_library: ClassVar[str] = "vq-tokenizers"

    def __init__(self, config: StrictConfig) -> None:
        super().__init__()
        self.config = config

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Give every family's ``encode`` / ``decode`` the accepted input forms of :mod:`vq_tokenizers.inputs`.

        Families write ``encode`` for float (B, 3, H, W) in [-1, 1] and ``decode`` for (B, h, w) grids; the
        wrapper converts PIL images, uint8 tensors and flat (B, h*w) tokens first, so no family repeats it.
        """
        super().__init_subclass__(**kwargs)
        if "encode" in cls.__dict__:
            cls.encode = _accepting_images(cls.__dict__["encode"])
        if "decode" in cls.__dict__:
            cls.decode = _accepting_flat_tokens(cls.__dict__["decode"])

    # --- what every family provides -------------------------------------------------------
    # --- Hub-style folders (vq_core.hub) --------------------------------------------------------
    def _pretrained_checkpoint(self) -> dict[str, Any]:
        return {"family": self.family, "config": self.config, "model": self.state_dict()}

    @classmethod
    def _from_pretrained_checkpoint(cls, ckpt: Checkpoint, map_location: str | torch.device) -> Tokenizer:
        model = tokenizer_from_checkpoint(ckpt).to(map_location)
        if not isinstance(model, cls):
            raise CheckpointError(f"{ckpt.path} holds a {ckpt.family!r} tokenizer, not a {cls.__name__}; load it with Tokenizer.from_pretrained")
        return model

    @property
    def codebook_size(self) -> int:
        raise NotImplementedError

    @property
    def image_size(self) -> int:
        raise NotImplementedError

    @property
    def grid(self) -> tuple[int, int]:
        """Token grid (h, w) for an ``image_size`` input (other sizes: :meth:`grid_for`)."""
        raise NotImplementedError

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> token indices (B, h, w), int64.

        Also takes a PIL image, a list of PIL images or uint8 tensors (B, 3, H, W) in [0, 255]
        (:mod:`vq_tokenizers.inputs`)."""
        raise NotImplementedError

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Token indices (B, h, w), or flat (B, h*w) as ``vq_ar.generate`` returns them -> images (B, 3, H, W) in [-1, 1]."""
        raise NotImplementedError(
            f"{self.family} tokens have no pixel decoder; train one with `vq-tok train-pixel-decoder`"
        )

    @property
    def can_decode(self) -> bool:
        return type(self).decode is not Tokenizer.decode

    def token_space_tensors(self) -> dict[str, torch.Tensor]:
        """The named tensors that decide which token an image gets.

        Families narrow this to encoder + quantizer (leaving out the decoder and usage statistics);
        the default, every tensor of the model, errs on the safe side for a family that does not.
        """
        return dict(self.state_dict())

    def token_space_hash(self) -> str:
        """Identity of the token space: the config *and* the token-deciding weights (``token_space_tensors``).

        Equal for models whose tokens mean the same thing (a checkpoint and its re-saved copy, a pixel
        decoder over it), different for two trainings of one preset with other seeds.
        """
        return weights_digest(self.config, self.token_space_tensors())

    @property
    def size_multiple(self) -> int | None:
        """Input sides must be multiples of this (a ViT's patch size, a conv net's downsampling factor);
        None: the family takes ``image_size`` inputs only."""
        return None

    def grid_for(self, height: int, width: int | None = None) -> tuple[int, int]:
        """Token grid (h, w) of a ``height`` x ``width`` input (square when ``width`` is None).

        The seed tokenizes at 256 px with ViT tokenizers trained at 224 px (position embeddings
        interpolated), so any size that is a multiple of :attr:`size_multiple` is accepted.
        """
        width = height if width is None else width
        multiple = self.size_multiple
        if multiple is None:
            if (height, width) != (self.image_size, self.image_size):
                raise ValueError(
                    f"{self.family}: model expects {self.image_size}x{self.image_size} images, got {height}x{width}; "
                    f"resize/crop first (vq-data transforms)"
                )
            return self.grid
        if height <= 0 or width <= 0 or height % multiple or width % multiple:
            raise ValueError(
                f"{self.family}: image sides must be multiples of {multiple} (trained at {self.image_size}), got "
                f"{height}x{width}; resize/crop first (vq-data transforms)"
            )
        return (height // multiple, width // multiple)

    def check_image_size(self, images: torch.Tensor) -> tuple[int, int]:
        """Refuse inputs the model cannot take, naming both shapes; returns their token grid."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.family}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        return self.grid_for(int(images.shape[-2]), int(images.shape[-1]))


def _model_device(model: nn.Module) -> torch.device | None:
    return next((p.device for p in model.parameters()), None)


def _accepting_images(encode: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(encode)
    def wrapper(self: Tokenizer, images: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        return encode(self, as_image_batch(images, device=_model_device(self)), *args, **kwargs)

    return wrapper


def _accepting_flat_tokens(decode: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    @functools.wraps(decode)
    def wrapper(self: Tokenizer, indices: Any, *args: Any, **kwargs: Any) -> torch.Tensor:
        return decode(self, as_token_grid(indices, self.grid, family=self.family), *args, **kwargs)

    return wrapper


_REGISTRY: dict[str, type[Tokenizer]] = {}


def register_tokenizer(cls: type[Tokenizer]) -> type[Tokenizer]:
    """Class decorator: make a family loadable by name from checkpoints."""
    if cls.family in _REGISTRY and _REGISTRY[cls.family] is not cls:
        raise ValueError(f"tokenizer family {cls.family!r} registered twice")
    _REGISTRY[cls.family] = cls
    return cls


BUILTIN_FAMILY_MODULES: tuple[str, ...] = (
    "vq_tokenizers.vqgan",
    "vq_tokenizers.cvq",
    "vq_tokenizers.fsq",
    "vq_tokenizers.vqkd",
    "vq_tokenizers.cluster",
    "vq_tokenizers.pixel_decoder",
)
"""Modules whose classes register the built-in families; imported on the first unknown name, because the
package's ``__init__`` imports nothing eagerly (see :mod:`vq_core.lazy`)."""


def tokenizer_class(family: str) -> type[Tokenizer]:
    if family not in _REGISTRY:
        for module in BUILTIN_FAMILY_MODULES:
            importlib.import_module(module)
    if family not in _REGISTRY:
        raise KeyError(f"unknown tokenizer family {family!r}; known: {sorted(_REGISTRY)}")
    return _REGISTRY[family]


def build_tokenizer(family: str, config: StrictConfig | dict[str, Any]) -> Tokenizer:
    """Build an untrained tokenizer of ``family`` from a config object or dict."""
    cls = tokenizer_class(family)
    if isinstance(config, dict):
        config = cls.config_class.from_dict(config, source=f"{family} config")
    return cls(config)


def save_tokenizer(
    model: Tokenizer, path: str | os.PathLike[str], *, step: int = 0, state: dict[str, Any] | None = None
) -> Path:
    """Checkpoint a tokenizer with its config (and optional training state)."""
    return save_checkpoint(path, family=model.family, config=model.config, model=model.state_dict(), step=step, state=state)


def load_tokenizer(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> Tokenizer:
    """Rebuild a tokenizer from a checkpoint alone, in eval mode; NaN/inf weights are refused (they tokenize garbage).

    ``path`` may also be a folder written by :meth:`Tokenizer.save_pretrained` (its ``model.safetensors``)."""
    if Path(path).is_dir():
        return tokenizer_from_checkpoint(read_pretrained(Path(path), map_location=map_location))
    return tokenizer_from_checkpoint(load_checkpoint(path, map_location=map_location))


def tokenizer_from_checkpoint(ckpt: Checkpoint) -> Tokenizer:
    """The tokenizer (eval mode) a loaded checkpoint describes: its family's class, config and weights."""
    path = ckpt.path
    bad = nonfinite_tensors(ckpt.model)
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds NaN/inf weights ({', '.join(bad[:3])}): it comes from a diverged run; "
            "use an earlier checkpoint or retrain with a lower --lr"
        )
    try:
        model = build_tokenizer(ckpt.family, ckpt.config)
    except KeyError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from err
    try:
        missing, unexpected = model.load_state_dict(ckpt.model, strict=False)
    except RuntimeError as err:  # tensors whose shapes differ from the config's
        raise CheckpointError(f"checkpoint {path} does not fit its {ckpt.family} config: {err}") from err
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit its {ckpt.family} config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    return model.eval()
