"""Exact encoding of training state as JSON plus named tensors, so checkpoints never need pickle.

A resume needs optimizer state (int-keyed dicts, tuples of betas), RNG states (python's tuple of 625
ints, numpy's ``('MT19937', uint32 array, ...)``, torch's uint8 tensor), EMA weights and data-loader
positions.  :func:`encode_state` splits such a structure into a JSON skeleton and a flat dict of tensors;
:func:`decode_state` rebuilds it value for value.  Plain JSON stays plain (str-keyed dicts, lists, str,
int, bool, None, finite floats); anything else becomes a one-tag object whose tag starts with ``$``:

``{"$tensor": name}``                              a torch tensor, stored under ``name``
``{"$ndarray": name, "dtype": "<u4", "shape": [624]}``  a numpy array, its raw bytes stored under ``name``
``{"$numpy": "<f8", "value": 1.5}``                 a numpy scalar
``{"$tuple": [...]}``                               a tuple
``{"$dict": [[key, value], ...]}``                  a dict with a non-str key or a key starting with ``$``
``{"$float": "nan" | "inf" | "-inf"}``              a non-finite float (JSON has none)

Only these types are accepted; anything else (a class instance, a function) is refused, naming where it
sits in the structure, instead of being smuggled in the way pickle would.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import numpy as np
import torch

TAG = "$"


class StateCodecError(TypeError):
    """A value cannot be stored as JSON + tensors, or a stored skeleton is malformed."""


def encode_state(value: Any, *, prefix: str = "state/") -> tuple[Any, dict[str, torch.Tensor]]:
    """Split ``value`` into a JSON-serialisable skeleton and the tensors it refers to (named ``prefix<n>``)."""
    tensors: dict[str, torch.Tensor] = {}

    def name() -> str:
        return f"{prefix}{len(tensors)}"

    def enc(v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if type(v) is int:
            return v
        if type(v) is float:
            return v if math.isfinite(v) else {"$float": repr(v)}
        if isinstance(v, torch.Tensor):
            key = name()
            tensors[key] = v.detach()
            return {"$tensor": key}
        if isinstance(v, np.ndarray):
            if v.dtype.hasobject:
                raise StateCodecError(f"state{where}: numpy object arrays cannot be stored (dtype {v.dtype})")
            key = name()
            raw = np.ascontiguousarray(v).reshape(-1).view(np.uint8)
            tensors[key] = torch.from_numpy(raw.copy())
            return {"$ndarray": key, "dtype": v.dtype.str, "shape": list(v.shape)}
        if isinstance(v, np.generic):
            if v.dtype.hasobject or v.dtype.kind not in "biuf":
                raise StateCodecError(f"state{where}: numpy scalar of dtype {v.dtype} cannot be stored")
            return {"$numpy": v.dtype.str, "value": enc(v.item(), where)}
        if type(v) is tuple:
            return {"$tuple": [enc(x, f"{where}[{i}]") for i, x in enumerate(v)]}
        if type(v) is list:
            return [enc(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if type(v) in (dict, OrderedDict):  # OrderedDict (module state dicts) comes back as dict
            if all(isinstance(k, str) and not k.startswith(TAG) for k in v):
                return {k: enc(x, f"{where}[{k!r}]") for k, x in v.items()}
            return {"$dict": [[_enc_key(k, where), enc(x, f"{where}[{k!r}]")] for k, x in v.items()]}
        raise StateCodecError(
            f"state{where}: {type(v).__module__}.{type(v).__qualname__} cannot be stored in a checkpoint "
            "(allowed: dict, list, tuple, str, int, float, bool, None, numpy arrays/scalars, torch tensors)"
        )

    def _enc_key(k: Any, where: str) -> Any:
        if k is None or isinstance(k, (bool, str, int, float, tuple)):
            return enc(k, f"{where} key")
        raise StateCodecError(f"state{where}: dict key of type {type(k).__name__} cannot be stored")

    return enc(value, ""), tensors


def decode_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Rebuild what :func:`encode_state` split; ``tensors`` must hold every name the skeleton refers to."""

    def tensor(key: Any, where: str) -> torch.Tensor:
        if not isinstance(key, str) or key not in tensors:
            raise StateCodecError(f"state{where}: refers to tensor {key!r}, which the file does not hold")
        return tensors[key]

    def dec(v: Any, where: str) -> Any:
        if v is None or isinstance(v, (bool, str, int, float)):
            return v
        if isinstance(v, list):
            return [dec(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict):
            raise StateCodecError(f"state{where}: unexpected JSON value of type {type(v).__name__}")
        tags = [k for k in v if k.startswith(TAG)]
        if not tags:
            return {k: dec(x, f"{where}[{k!r}]") for k, x in v.items()}
        tag, body = tags[0], v[tags[0]]
        if len(tags) > 1:
            raise StateCodecError(f"state{where}: object with several tags {tags}")
        if tag == "$tensor":
            return tensor(body, where)
        if tag == "$ndarray":
            raw = tensor(body, where).cpu().numpy()
            return np.frombuffer(raw.tobytes(), dtype=np.dtype(v["dtype"])).reshape(v["shape"]).copy()
        if tag == "$numpy":
            return np.dtype(body).type(dec(v["value"], where))
        if tag == "$tuple":
            return tuple(dec(x, f"{where}[{i}]") for i, x in enumerate(body))
        if tag == "$dict":
            return {_hashable(dec(k, f"{where} key")): dec(x, f"{where}[{k!r}]") for k, x in body}
        if tag == "$float":
            if body not in ("nan", "inf", "-inf"):
                raise StateCodecError(f"state{where}: bad $float {body!r}")
            return float(body)
        raise StateCodecError(f"state{where}: unknown tag {tag!r}")

    return dec(skeleton, "")


def _hashable(key: Any) -> Any:
    if isinstance(key, (list, dict)):
        raise StateCodecError(f"dict key {key!r} is not hashable")
    return key
