"""Reading checkpoints other projects published (taming, LlamaGen, BEiT v2) without running their pickles.

Those releases are ``torch.save`` pickles.  They load with ``torch.load(weights_only=True)``, whose
unpickler builds only tensors and plain containers, plus an explicit allowlist of the harmless types
the releases carry: ``argparse.Namespace`` (the training ``args`` LlamaGen and BEiT store), numpy's
array/scalar/dtype reconstruction (RNG states, metric values), ``OrderedDict``, and inert stand-ins
for the pytorch_lightning callback classes that a taming Lightning ``.ckpt`` uses as dict keys of its
``callbacks`` entry (the real classes are never imported).  A file that names any other global is
refused, naming the file and the globals, unless the caller passes ``trust_pickle=True``
(``--trust-pickle`` on the command line) - which unpickles it in full and may run code.
"""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vq_core.checkpoint import CheckpointError, looks_like_safetensors


class UntrustedCheckpointError(CheckpointError):
    """A foreign checkpoint needs globals outside the allowlist; loading it would unpickle arbitrary code."""


class LightningCallbackKey:
    """Stands in for a pytorch_lightning callback *class* used as a key of a ``.ckpt``'s ``callbacks`` dict.

    Lightning stores ``{ModelCheckpoint: {...best_model_score...}}``; only the name matters to a
    converter, so the key unpickles as this inert class instead of importing Lightning.
    """


_LIGHTNING_CALLBACKS = (
    "pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint",
    "pytorch_lightning.callbacks.early_stopping.EarlyStopping",
    "pytorch_lightning.callbacks.lr_monitor.LearningRateMonitor",
    "lightning.pytorch.callbacks.model_checkpoint.ModelCheckpoint",
    "lightning.pytorch.callbacks.early_stopping.EarlyStopping",
)


def _numpy_globals() -> list[Any]:
    """numpy's array/scalar reconstruction functions under both their numpy 1 and numpy 2 module names."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    found: list[Any] = [np.ndarray, np.dtype]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        found += [(multiarray._reconstruct, f"{module}._reconstruct"), (multiarray.scalar, f"{module}.scalar")]
    found += [type(np.dtype(code)) for code in "?bBhHiIlLqQefdgFDG"]  # numpy.dtypes.Float64DType & co
    return found


def allowed_globals() -> list[Any]:
    """What :func:`load_foreign_checkpoint` lets a foreign pickle name, besides torch's own defaults."""
    stubs = [(LightningCallbackKey, name) for name in _LIGHTNING_CALLBACKS]
    return [argparse.Namespace, collections.OrderedDict, *_numpy_globals(), *stubs]


def load_foreign_checkpoint(
    path: str | os.PathLike[str], *, trust_pickle: bool = False, map_location: str | torch.device = "cpu"
) -> Any:
    """The object a foreign ``torch.save`` file holds, unpickled only as far as the allowlist permits.

    ``trust_pickle=True`` lifts the allowlist (``weights_only=False``): only for files whose origin one
    trusts, since unpickling can execute code.  A safetensors file loads as its dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if looks_like_safetensors(path):
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(path, device=str(map_location))
        except SafetensorError as err:
            raise CheckpointError(f"checkpoint {path} is an unreadable safetensors file ({err})") from err
    # torch.load is handed an open file, never the name: torch 2.14 picks its safetensors reader by extension
    if trust_pickle:
        try:
            with open(path, "rb") as handle:
                return torch.load(handle, map_location=map_location, weights_only=False)
        except Exception as err:  # torch raises many types for truncated/corrupt files
            raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}: {err})") from err
    try:
        with torch.serialization.safe_globals(allowed_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with open(path, "rb") as handle:
                return torch.load(handle, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - the weights-only unpickler raises UnpicklingError, truncation others
        needed = _unsafe_globals(path, err)
        if needed:
            raise UntrustedCheckpointError(
                f"checkpoint {path} needs {', '.join(needed)}, which vq does not unpickle (it could run code); "
                "pass --trust-pickle (trust_pickle=True) only if you trust where the file came from"
            ) from err
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(err).__name__}: {' '.join(str(err).split())[:300]})") from err


def _unsafe_globals(path: Path, err: BaseException) -> list[str]:
    """The globals outside the allowlist that ``path`` names (empty when the error is something else)."""
    if not isinstance(err, pickle.UnpicklingError):
        return []
    try:
        with torch.serialization.safe_globals(allowed_globals()), open(path, "rb") as handle:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(handle)
    except Exception:  # noqa: BLE001 - legacy (non-zip) files cannot be scanned; fall back to the error text
        names = []
    names = names or re.findall(r"GLOBAL ([\w.]+)", str(err))
    if names:
        return names
    detail = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", str(err), re.S)
    return [f"pickle features outside the weights-only subset ({' '.join(detail.group(1).split()) if detail else err})"]
