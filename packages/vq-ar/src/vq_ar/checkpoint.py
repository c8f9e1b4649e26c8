"""AR checkpoints (family ``"ar"``): the model config, weights, and the token space they model.

Besides what :func:`vq_core.save_checkpoint` stores, an AR checkpoint records the manifest's
tokenizer (name, config hash, codebook, grid, checkpoint path) and the dataset's class names, so
sampling can find and verify the pixel decoder, and validation can refuse token shards from another
tokenizer, from the checkpoint alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch

from vq_ar.config import ARConfig
from vq_ar.model import ARTransformer, build_ar_model
from vq_core import Checkpoint, CheckpointError, DatasetInfo, Manifest, TokenizerInfo, load_checkpoint, nonfinite_tensors, save_checkpoint

from vq_core.hub import HubMixin, read_pretrained

FAMILY = "ar"


@dataclass
class LoadedAR(HubMixin):
    """A model rebuilt from a checkpoint, with what it was trained on.

    ``LoadedAR.from_pretrained(dir or hub id)`` / ``save_pretrained(dir)`` / ``push_to_hub(repo)``
    (:class:`vq_core.hub.HubMixin`) move the model with its token space (tokenizer identity, class names):
    the folder's ``model.safetensors`` is an AR checkpoint that ``vq-ar sample --ckpt`` takes as it is.
    """

    hub_library: ClassVar[str] = "vq-ar"
    hub_family: ClassVar[str | None] = FAMILY

    model: ARTransformer
    config: ARConfig
    tokenizer: TokenizerInfo
    dataset: DatasetInfo
    step: int
    path: Path
    state: dict[str, Any] = field(default_factory=dict)

    def _pretrained_checkpoint(self) -> dict[str, Any]:
        state = {"tokenizer": self.tokenizer.model_dump(mode="json"), "dataset": self.dataset.model_dump(mode="json")}
        return {"family": FAMILY, "config": self.config, "model": self.model.state_dict(), "step": self.step, "state": state}

    @classmethod
    def _from_pretrained_checkpoint(cls, ckpt: Checkpoint, map_location: str | torch.device) -> LoadedAR:
        return ar_from_checkpoint(ckpt, map_location=map_location)

    def check_manifest(self, manifest: Manifest, *, where: str | os.PathLike[str] | None = None) -> None:
        """Refuse token shards made by another tokenizer than the one this model was trained on.

        The comparison is of token-space identities (tokenizer config *and* weights, as
        ``Tokenizer.token_space_hash`` computes them), so shards of a same-preset tokenizer with other
        weights are refused too.
        """
        manifest.check_tokenizer(
            codebook_size=self.config.vocab_size,
            config_hash=self.tokenizer.config_hash,
            grid=self.config.grid,
            where=f"AR checkpoint {self.path} (trained on tokens of {self.tokenizer.checkpoint or self.tokenizer.name})",
            manifest=where,
            fix="use token shards of the tokenizer the AR model was trained on, or train a new AR model (new --out) on these",
        )


def save_ar(
    path: str | os.PathLike[str],
    model: ARTransformer,
    *,
    tokenizer: TokenizerInfo,
    dataset: DatasetInfo,
    step: int,
    state: dict[str, Any] | None = None,
) -> Path:
    """Atomically write an AR checkpoint; ``state`` adds training state (optimizer, data position)."""
    payload = {"tokenizer": tokenizer.model_dump(mode="json"), "dataset": dataset.model_dump(mode="json")}
    payload.update(state or {})
    return save_checkpoint(path, family=FAMILY, config=model.config, model=model.state_dict(), step=step, state=payload)


def load_ar(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> LoadedAR:
    """Rebuild an AR model (eval mode) from a checkpoint written by :func:`save_ar`; NaN/inf weights are refused.

    ``path`` may also be a folder written by :meth:`LoadedAR.save_pretrained` (its ``model.safetensors``)."""
    if Path(path).is_dir():
        return ar_from_checkpoint(read_pretrained(Path(path), family=FAMILY, map_location=map_location), map_location=map_location)
    return ar_from_checkpoint(load_checkpoint(path, family=FAMILY, map_location=map_location), map_location=map_location)


def ar_from_checkpoint(ckpt: Checkpoint, *, map_location: str | torch.device = "cpu") -> LoadedAR:
    """The AR model (eval mode) and token space a loaded checkpoint describes."""
    path = ckpt.path
    config = ARConfig.from_dict(ckpt.config, source=f"checkpoint {path}")
    if "tokenizer" not in ckpt.state or "dataset" not in ckpt.state:
        raise CheckpointError(f"checkpoint {path} does not record its tokenizer/dataset; it was not written by vq-ar")
    bad = nonfinite_tensors(ckpt.model)
    if bad:
        raise CheckpointError(
            f"checkpoint {path} holds NaN/inf weights ({', '.join(bad[:3])}): it comes from a diverged run; "
            "use an earlier checkpoint or retrain with a lower --lr"
        )
    model = build_ar_model(config, load_pretrained=False)
    missing, unexpected = model.load_state_dict(ckpt.model, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit its AR config: missing {missing[:5]}, unexpected {unexpected[:5]}"
        )
    model.to(map_location).eval()
    return LoadedAR(
        model=model,
        config=config,
        tokenizer=TokenizerInfo.model_validate(ckpt.state["tokenizer"]),
        dataset=DatasetInfo.model_validate(ckpt.state["dataset"]),
        step=ckpt.step,
        path=Path(path) if path is not None else Path(),
        state=ckpt.state,
    )
