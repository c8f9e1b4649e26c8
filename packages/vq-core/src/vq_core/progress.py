"""Progress bars that stay quiet in logs, CI and worker processes."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, *, enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar that is disabled unless stderr is a TTY (or ``enabled`` forces it)."""
    show = sys.stderr.isatty() if enabled is None else enabled
    return tqdm(iterable, disable=not show, dynamic_ncols=True, **kwargs)
