"""One-line CLI errors shared by every ``vq-*`` command.

The framework's exceptions already name the file, the field and the fix; a traceback around them only
hides that line.  :class:`FriendlyGroup` turns the user-error types into ``Error: <message>`` on one
line with exit code 1 (click's usage errors keep exit code 2) and prints the traceback only when the
group's ``-v/--verbose`` flag is set, so a bug report can still carry it.  Exceptions outside the
user-error types are bugs and keep their traceback.
"""

from __future__ import annotations

import traceback
from typing import Any, ClassVar

import click
from pydantic import ValidationError

from vq_core.checkpoint import CheckpointError
from vq_core.config import ConfigError
from vq_core.divergence import TrainingDivergedError
from vq_core.manifest import ManifestError

USER_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    CheckpointError,
    TrainingDivergedError,
    ManifestError,
    ValidationError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    ValueError,
    KeyError,
)


def one_line(err: BaseException) -> str:
    """The exception's message on one line (pydantic and KeyError messages included)."""
    if isinstance(err, ValidationError):
        parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()]
        text = f"{err.title}: " + "; ".join(parts)
    elif isinstance(err, KeyError) and err.args and isinstance(err.args[0], str):
        text = err.args[0]
    else:
        text = str(err) or type(err).__name__
    return " ".join(text.split())


class FriendlyGroup(click.Group):
    """A click group whose user errors print as one line; ``extra_errors`` adds a package's own types."""

    extra_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (*USER_ERRORS, *self.extra_errors) as err:
            if ctx.params.get("verbose"):
                traceback.print_exc()
            raise click.ClickException(one_line(err)) from err


def friendly_group(*extra_errors: type[BaseException]) -> type[FriendlyGroup]:
    """A :class:`FriendlyGroup` subclass that also treats ``extra_errors`` as user errors."""
    return type("FriendlyGroup", (FriendlyGroup,), {"extra_errors": tuple(extra_errors)})
