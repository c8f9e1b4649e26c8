"""Self-describing checkpoints: one safetensors file, nothing that loading must unpickle.

A checkpoint holds the model family, its config (as plain JSON data), the weights and any training
state.  Loading never needs the original config file, and a reader can name exactly what does not
match ("checkpoint X has codebook 1024 but manifest says 8192").

Layout: every tensor - the model's weights under their state-dict names, the tensors inside ``state``
under ``state/<n>`` - is a safetensors tensor; everything else is JSON in the safetensors header's
``__metadata__`` (``format``, ``format_version``, ``family``, ``config``, ``config_hash``, ``step``,
``model`` (the weight names in order), ``state`` (the skeleton of :mod:`vq_core.state_codec`) and
``aliases`` (tied weights, stored once)).  Any safetensors reader can list and load the weights.

A ``torch.save`` (pickle) file is refused without being opened: unpickling runs whatever code the
file names.  ``vq-core checkpoint upgrade OLD NEW --trust-pickle`` converts a pre-safetensors vq
checkpoint one has reason to trust.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from vq_core.config import config_hash
from vq_core.io import atomic_path
from vq_core.state_codec import StateCodecError, decode_state, encode_state

CHECKPOINT_FORMAT = 2
"""Version 1 was a ``torch.save`` pickle; version 2 is safetensors + JSON metadata."""
FORMAT_NAME = "vq-checkpoint"
STATE_PREFIX = "state/"
_META_KEYS = ("format", "format_version", "family", "config", "config_hash", "step", "model", "state", "aliases")
_MAX_HEADER = 100 << 20  # safetensors' own bound on the JSON header


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or of the wrong kind."""


@dataclass
class Checkpoint:
    """The contents of one checkpoint file."""

    family: str
    config: dict[str, Any]
    config_hash: str
    model: dict[str, torch.Tensor]
    step: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def upgrade_hint(path: str | os.PathLike[str]) -> str:
    """The one command that converts an old pickle-format vq checkpoint, for error messages."""
    return f"`vq-core checkpoint upgrade {path} NEW.safetensors --trust-pickle` converts an old vq checkpoint you trust"


def save_checkpoint(
    path: str | os.PathLike[str],
    *,
    family: str,
    config: BaseModel,
    model: dict[str, torch.Tensor],
    step: int = 0,
    state: dict[str, Any] | None = None,
) -> Path:
    """Atomically write a checkpoint; ``state`` carries optimizer/scheduler/EMA/discriminator/RNG state."""
    return write_checkpoint(
        path,
        family=family,
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),
        model=model,
        step=step,
        state=state,
    )


def write_checkpoint(
    path: str | os.PathLike[str],
    *,
    family: str,
    config: dict[str, Any],
    config_hash: str,
    model: dict[str, torch.Tensor],
    step: int = 0,
    state: dict[str, Any] | None = None,
) -> Path:
    """:func:`save_checkpoint` for a config already in JSON form (``vq-core checkpoint upgrade`` keeps its hash).

    Weights holding NaN/inf are refused: a checkpoint is never the carrier of a diverged update."""
    bad = nonfinite_tensors(model)
    if bad:
        raise CheckpointError(
            f"refusing to write {path}: weights {bad[:5]} hold NaN/inf (a diverged run); resume from an earlier checkpoint"
        )
    clash = [k for k in model if k.startswith(STATE_PREFIX)]
    if clash:
        raise CheckpointError(f"weight names may not start with {STATE_PREFIX!r} (reserved for training state): {clash[:3]}")
    try:
        skeleton, state_tensors = encode_state(state or {}, prefix=STATE_PREFIX)
    except StateCodecError as err:
        raise CheckpointError(f"checkpoint {path}: {err}") from err
    tensors, aliases = _storable({**model, **state_tensors})
    metadata = {
        "format": FORMAT_NAME,
        "format_version": str(CHECKPOINT_FORMAT),
        "family": family,
        "config": json.dumps(config, allow_nan=False),
        "config_hash": config_hash,
        "step": str(int(step)),
        "model": json.dumps(list(model)),
        "state": json.dumps(skeleton, allow_nan=False),
        "aliases": json.dumps(aliases),
    }
    with atomic_path(path) as tmp:
        mode = tmp.stat().st_mode & 0o777  # the umask's; safetensors replaces the file with a 0600 one
        save_file(tensors, tmp, metadata=metadata)
        os.chmod(tmp, mode)
    return Path(path)


def _storable(named: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """CPU, contiguous tensors that share no memory, and the names that alias an identical view.

    Tied weights (an output head sharing the embedding, ``tie_embeddings``) are stored once and named
    in ``aliases``; other tensors that overlap in memory are copied, since safetensors stores each
    tensor's bytes separately.
    """
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    views: dict[tuple[Any, ...], str] = {}
    storages: set[tuple[Any, ...]] = set()
    for name, tensor in named.items():
        tensor = tensor.detach()
        if tensor.layout != torch.strided or tensor.device.type == "meta":
            raise CheckpointError(f"tensor {name!r} is {tensor.layout} on {tensor.device}; only dense tensors can be saved")
        storage = (tensor.device, tensor.untyped_storage().data_ptr())
        view = (*storage, tensor.storage_offset(), tuple(tensor.shape), tensor.stride(), tensor.dtype)
        if tensor.numel() and view in views:
            aliases[name] = views[view]
            continue
        views[view] = name
        shared = tensor.numel() > 0 and storage in storages
        storages.add(storage)
        tensor = tensor.to("cpu")
        if shared or not tensor.is_contiguous():
            tensor = tensor.clone(memory_format=torch.contiguous_format)
        tensors[name] = tensor
    return tensors, aliases


def load_checkpoint(
    path: str | os.PathLike[str], *, family: str | None = None, map_location: str | torch.device = "cpu"
) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`, checking its family when given.

    Only safetensors files are opened; a pickle (``torch.save``) file is refused unread, naming the
    upgrade command.  Truncated or altered files are refused, naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    refuse_unless_safetensors(path)
    device = _device(map_location)
    try:
        with safe_open(path, framework="pt", device=device) as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT_NAME:
                raise CheckpointError(
                    f"{path} is a safetensors file but not a vq checkpoint (no '{FORMAT_NAME}' metadata); "
                    "convert foreign weights with `vq-tok convert`"
                )
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except SafetensorError as err:
        raise CheckpointError(f"checkpoint {path} is unreadable ({' '.join(str(err).split())}); it may be truncated") from err
    return _checkpoint_from(path, metadata, tensors, family)


def _checkpoint_from(
    path: Path, metadata: dict[str, str], tensors: dict[str, torch.Tensor], family: str | None
) -> Checkpoint:
    if metadata.get("format_version") != str(CHECKPOINT_FORMAT):
        raise CheckpointError(
            f"checkpoint {path} has format version {metadata.get('format_version')!r}; this vq-core reads {CHECKPOINT_FORMAT}"
        )
    missing = [k for k in _META_KEYS if k not in metadata]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks metadata {missing}; it was not written by vq-core")
    try:
        config = json.loads(metadata["config"])
        names = json.loads(metadata["model"])
        skeleton = json.loads(metadata["state"])
        aliases = json.loads(metadata["aliases"])
        step = int(metadata["step"])
        for alias, target in aliases.items():
            tensors[alias] = tensors[target]
        model = {name: tensors[name] for name in names}
        state = decode_state(skeleton, tensors)
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {path} has malformed metadata ({type(err).__name__}: {err})") from err
    if family is not None and metadata["family"] != family:
        raise CheckpointError(f"checkpoint {path} holds a '{metadata['family']}' model, expected '{family}'")
    return Checkpoint(
        family=metadata["family"],
        config=config,
        config_hash=metadata["config_hash"],
        model=model,
        step=step,
        state=state,
        path=path,
    )


def looks_like_safetensors(path: Path) -> bool:
    """Whether ``path`` starts like a safetensors file: a plausible header length, then a JSON object."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) < 9 or head[8:9] != b"{":
        return False
    size = int.from_bytes(head[:8], "little")
    return size <= _MAX_HEADER and size + 8 <= path.stat().st_size


def refuse_unless_safetensors(path: Path) -> None:
    """Raise :class:`CheckpointError` unless ``path`` is a safetensors file; never unpickles.

    A pickle-based ``torch.save`` file (a zip archive, or a bare pickle stream) gets the upgrade hint.
    """
    if looks_like_safetensors(path):
        return
    with open(path, "rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        raise CheckpointError(
            f"checkpoint {path} is unreadable: truncated (its header alone needs {int.from_bytes(head[:8], 'little') + 8} bytes, "
            f"the file has {path.stat().st_size})"
        )
    if head.startswith(b"PK\x03\x04") or head[:1] == b"\x80":
        raise CheckpointError(
            f"checkpoint {path} is a pickle (torch.save) file, which vq never loads since unpickling can run code; "
            f"{upgrade_hint(path)}, `vq-tok convert` one of a published release"
        )
    raise CheckpointError(
        f"checkpoint {path} is not a safetensors file (vq checkpoints are); it may be truncated, or {upgrade_hint(path)}"
    )


def nonfinite_tensors(tensors: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors holding NaN or inf (what a diverged run leaves).

    ``aminmax`` is one reduction without a bool copy (NaN propagates into it, inf is its own extreme);
    ``isfinite(t).all()`` is ~50x slower on CPU, too slow to run before every checkpoint write.
    """
    bad = []
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and tensor.numel():
            low, high = torch.aminmax(tensor.detach())
            if not bool(torch.isfinite(low) & torch.isfinite(high)):
                bad.append(name)
    return bad


def _device(map_location: str | torch.device) -> str:
    device = torch.device(map_location)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return str(device)
