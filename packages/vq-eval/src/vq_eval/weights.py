"""Finding pretrained weight files on disk.

This project never downloads weights at run time (evaluation machines are often offline, and a
silently different download would change every FID).  A metric that needs weights looks, in
order, at the path it was given, an environment variable, and the default cache locations; when
none exists the error names every place it looked and how to fill one of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch


class WeightsNotFoundError(FileNotFoundError):
    """A weight file a metric needs is not on disk."""


def resolve_weights(
    what: str,
    explicit: str | os.PathLike[str] | None,
    env_var: str,
    defaults: Sequence[Path],
    *,
    url: str | None = None,
    flag: str | None = None,
) -> Path:
    """Return the first existing weight file among ``explicit``, ``$env_var`` and ``defaults``.

    An explicit path (or the environment variable) that does not exist is an error by itself: the
    user asked for that file, so falling back to a default would hide a typo.
    """
    requested = explicit if explicit is not None else os.environ.get(env_var) or None
    if requested is not None:
        path = Path(requested).expanduser()
        if not path.is_file():
            source = f"--{flag}" if explicit is not None and flag else ("argument" if explicit is not None else f"${env_var}")
            raise WeightsNotFoundError(f"{what} weights file {path} (from {source}) does not exist")
        return path
    for path in defaults:
        if path.is_file():
            return path
    places = ", ".join(str(p) for p in defaults)
    how = f"download {url} on a machine with internet access and copy it to one of them" if url else "copy the file there"
    hint = f", or pass --{flag} PATH" if flag else ""
    raise WeightsNotFoundError(f"{what} weights not found; looked in: {places}. Fix: {how}, set ${env_var}{hint}")


def read_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load a weights file as a state dict; any unreadable or non-dict file is a ValueError naming ``what`` and the path."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling errors have many types; all mean the same to the user
        raise ValueError(f"{what} {path} could not be read as a torch state dict: {err}") from err
    if not isinstance(state, dict):
        raise ValueError(f"{what} {path} holds a {type(state).__name__}, expected a state dict")
    return state
