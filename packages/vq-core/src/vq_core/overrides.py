"""Dotted ``KEY=VALUE`` overrides and YAML config files: one syntax for every ``vq-*`` command.

``quantizer.codebook_size=64`` is the same override whether it is given to ``vq-tok train --set``,
``vq-ar train --set``, or ``vq-pipeline run CONFIG tokenizer.overrides.quantizer.codebook_size=64``:
dotted keys nest, values parse as JSON when they can (numbers, booleans, lists, ``null``) and stay
strings otherwise.  Config files are YAML mappings of the same nested shape.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import click

from vq_core.config import ConfigError


def parse_value(raw: str) -> Any:
    """``raw`` as JSON when it parses (``64``, ``true``, ``[8, 5, 5]``, ``null``), else the string itself."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def parse_overrides(pairs: Iterable[str], what: str) -> dict[str, Any]:
    """``key=value`` pairs -> a nested dict (later pairs win).

    A malformed pair is a usage error of the flag ``what`` (``click.BadParameter``, exit code 2): the
    pairs come from a command line.
    """
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key or any(not part for part in key.split(".")):
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE with a dotted KEY, e.g. quantizer.codebook_size=64", param_hint=what)
        node = out
        *parents, leaf = key.split(".")
        for parent in parents:
            child = node.setdefault(parent, {})
            if not isinstance(child, dict):
                raise click.BadParameter(f"{pair!r} sets a field inside {parent!r}, which an earlier pair set to a value", param_hint=what)
            node = child
        node[leaf] = parse_value(raw)
    return out


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in depth: nested dicts merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(values: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The ``key=value`` pairs that :func:`parse_overrides` turns back into ``values``."""
    pairs = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            pairs.extend(flatten(value, f"{name}."))
        else:
            pairs.append(f"{name}={json.dumps(value)}")
    return pairs


def load_yaml_mapping(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """A YAML file holding a mapping (``{}`` for an empty file); ``what`` names it in errors."""
    import yaml  # not at module import: `vq-* --help` stays fast

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read {what} {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{what} {path} is not valid YAML: {' '.join(str(err).split())}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{what} {path} must hold a mapping of fields, got {type(data).__name__}")
    return data
