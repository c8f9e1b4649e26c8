"""One-line CLI errors shared by every ``vq-*`` command.

The framework's exceptions already name the file, the field and the fix; a traceback around them only
hides that line.  :class:`FriendlyGroup` turns the user-error types into ``Error: <message>`` on one
line with exit code 1 (click's usage errors keep exit code 2) and prints the traceback only when the
group's ``-v/--verbose`` flag is set, so a bug report can still carry it.  Exceptions outside the
user-error types are bugs and keep their traceback.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any, ClassVar

import click
from pydantic import ValidationError

USER_ERROR_NAMES: tuple[str, ...] = (
    "vq_core.config:ConfigError",
    "vq_core.checkpoint:CheckpointError",
    "vq_core.divergence:TrainingDivergedError",
    "vq_core.manifest:ManifestError",
)
"""The framework's user-error types, named rather than imported: ``vq_core.checkpoint`` imports torch,
which ``vq-* --help`` must not wait for; they are resolved when an exception reaches the group."""

BUILTIN_USER_ERRORS: tuple[type[BaseException], ...] = (
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

    extra_errors: ClassVar[tuple[type[BaseException] | str, ...]] = ()

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise  # click's own (`--help` is an Exit): resolving the user-error types would import torch
        except Exception as err:
            if not isinstance(err, user_errors(self.extra_errors)):
                raise
            if ctx.params.get("verbose"):
                traceback.print_exc()
            raise click.ClickException(one_line(err)) from err


def resolve_error(error: type[BaseException] | str) -> type[BaseException]:
    """An exception type, or the one a ``"module:Name"`` string names (imported now)."""
    if not isinstance(error, str):
        return error
    module, _, name = error.partition(":")
    found = getattr(importlib.import_module(module), name)
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise TypeError(f"{error} is not an exception type")
    return found


def user_errors(extra: tuple[type[BaseException] | str, ...] = ()) -> tuple[type[BaseException], ...]:
    """Every type a CLI reports as a one-line user error: the framework's, the builtins', ``extra``."""
    return (*BUILTIN_USER_ERRORS, *(resolve_error(e) for e in (*USER_ERROR_NAMES, *extra)))


def friendly_group(*extra_errors: type[BaseException] | str) -> type[FriendlyGroup]:
    """A :class:`FriendlyGroup` subclass that also treats ``extra_errors`` (types, or ``"module:Name"``
    strings so that the CLI module need not import the module defining them) as user errors."""
    return type("FriendlyGroup", (FriendlyGroup,), {"extra_errors": tuple(extra_errors)})
