"""What every ``vq-*`` CLI shares: the top-level group with ``--version``, ``-v`` and ``-q``.

One definition so that the flags mean the same in ``vq-core``, ``vq-data``, ``vq-tok``, ``vq-ar``,
``vq-eval`` and ``vq-pipeline``:

* ``-v/--verbose`` - DEBUG logging, and the traceback of a user error printed above its one-line
  ``Error:`` (see :class:`vq_core.cli_errors.FriendlyGroup`);
* ``-q/--quiet`` - warnings and errors only, and no progress bars (``VQ_PROGRESS=0``, which
  :func:`vq_core.progress.progress` and any subprocess started from here read);
* neither - INFO logging; progress bars when stderr is a terminal;
* ``--version`` - the installed distribution's version.

This module imports click alone, so a CLI module that needs nothing else at import time keeps
``--help`` fast (torch is imported inside the commands).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import Any

import click

from vq_core.cli_errors import friendly_group
from vq_core.progress import PROGRESS_ENV


class RenamedOption(click.Option):
    """An option that still accepts its old spellings (``old_names``) but shows only its new name in ``--help``.

    Used where a command's flag was renamed to the name every ``vq-*`` CLI uses for the same thing
    (``vq-ar sample --cfg`` -> ``--cfg-scale``), so scripts written against the old name keep working.
    """

    def __init__(self, *args: Any, old_names: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        unknown = set(old_names) - set(self.opts)
        if unknown:
            raise ValueError(f"old names {sorted(unknown)} are not among the option's names {self.opts}")
        self.old_names = tuple(old_names)

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        opts = self.opts
        self.opts = [o for o in opts if o not in self.old_names]
        try:
            return super().get_help_record(ctx)
        finally:
            self.opts = opts


def configure_output(*, verbose: bool, quiet: bool) -> None:
    """Logging level and progress bars for ``-v`` / ``-q`` (refuses both)."""
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet contradict each other; pass one")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    if quiet:
        os.environ[PROGRESS_ENV] = "0"


def vq_cli(
    distribution: str, *extra_errors: type[BaseException] | str, **group_kwargs: Any
) -> Callable[[Callable[..., Any]], click.Group]:
    """Decorator making ``fn`` the top-level group of a ``vq-*`` CLI.

    ``distribution`` names the installed package whose version ``--version`` prints; ``extra_errors``
    are the package's user-error types (or ``"module:Name"`` strings, resolved only when an error
    happens) that print as one line.
    """

    def decorate(fn: Callable[..., Any]) -> click.Group:
        @functools.wraps(fn)
        def callback(verbose: bool, quiet: bool, **params: Any) -> Any:
            configure_output(verbose=verbose, quiet=quiet)
            return fn(**params)

        command: Any = callback
        command = click.option(
            "-q", "--quiet", is_flag=True, help="warnings and errors only, no progress bars"
        )(command)
        command = click.option(
            "-v", "--verbose", is_flag=True, help="debug logging, and the traceback of a user error"
        )(command)
        command = click.version_option(package_name=distribution, message="%(package)s %(version)s")(command)
        return click.group(cls=friendly_group(*extra_errors), **group_kwargs)(command)

    return decorate
