"""Progress bars that stay quiet in logs, CI, worker processes and under ``-q``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

PROGRESS_ENV = "VQ_PROGRESS"
"""``0`` turns every bar off (``-q`` of any ``vq-*`` CLI sets it; see :mod:`vq_core.cli_common`)."""


def progress_enabled() -> bool:
    """Bars are shown when stderr is a terminal, unless ``VQ_PROGRESS=0``."""
    return os.environ.get(PROGRESS_ENV, "") != "0" and sys.stderr.isatty()


def progress(iterable: Iterable[T] | None = None, *, enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar that is disabled unless stderr is a TTY and ``-q`` was not given (or ``enabled`` forces it)."""
    show = progress_enabled() if enabled is None else enabled
    return tqdm(iterable, disable=not show, dynamic_ncols=True, **kwargs)
