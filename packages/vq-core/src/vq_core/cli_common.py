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
from typing import Any, TypeVar

import click

from vq_core.cli_errors import friendly_group
from vq_core.config import ConfigError
from vq_core.overrides import flatten, load_yaml_mapping
from vq_core.progress import PROGRESS_ENV

F = TypeVar("F", bound=Callable[..., Any])
_SECTIONS = "vq.config_sections"


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


def config_option(**sections: str) -> Callable[[F], F]:
    """Add ``--config FILE.yaml`` to a command (place it right under ``@main.command()``).

    The file's keys are the command's own options, by parameter or flag name (``steps: 100``,
    ``loader_workers: 4``, ``compile: true``); a flag on the command line beats the file.  Each
    ``section=param`` given names a nested mapping of the file (``model: {quantizer: {codebook_size: 64}}``)
    that feeds the ``KEY=VALUE`` override option ``param`` (``--set``): the file's fields are applied first
    and the flags' after them, so ``--set quantizer.codebook_size=128`` still wins.  Unknown keys are
    refused, naming the file and the known keys.
    """

    def load(ctx: click.Context, _param: click.Parameter, path: str | None) -> str | None:
        if path is None:
            return None
        data = load_yaml_mapping(path, "--config file")
        by_name: dict[str, str] = {}
        for p in ctx.command.params:
            if p.name is None or p.name == "config_file" or p.name in sections.values():
                continue
            flags = (*p.opts, *getattr(p, "secondary_opts", ())) if isinstance(p, click.Option) else ()
            for alias in (p.name, *(o.lstrip("-").replace("-", "_") for o in flags if o.startswith("--") and not o.startswith("--no-"))):
                by_name.setdefault(alias, p.name)
        defaults: dict[str, Any] = {}
        pairs: dict[str, tuple[str, ...]] = {}
        for key, value in data.items():
            name = str(key).replace("-", "_")
            if name in sections:
                if not isinstance(value, dict):
                    raise ConfigError(f"{key} in {path} must be a mapping of fields (e.g. quantizer: {{codebook_size: 64}}); got {value!r}")
                pairs[sections[name]] = tuple(flatten(value))
            elif name in by_name:
                defaults[by_name[name]] = value
            else:
                known = ", ".join(sorted({*by_name, *sections}))
                raise ConfigError(f"unknown key {key!r} in --config file {path}; known: {known}")
        ctx.default_map = {**(ctx.default_map or {}), **defaults}
        ctx.meta[_SECTIONS] = pairs
        return path

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def command(config_file: str | None, **params: Any) -> Any:
            for param, pairs in click.get_current_context().meta.get(_SECTIONS, {}).items():
                params[param] = (*pairs, *params[param])
            return fn(**params)

        return click.option(  # type: ignore[return-value]
            "--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None, is_eager=True,
            callback=load, expose_value=True, metavar="FILE.yaml",
            help="YAML file of this command's options"
            + (f" and nested {'/'.join(sections)} fields (applied before --set-style flags)" if sections else "")
            + "; flags given on the command line win",
        )(command)

    return decorate
