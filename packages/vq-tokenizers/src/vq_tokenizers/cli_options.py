"""Parsing of the ``--set key=value`` style overrides shared by every ``vq-tok`` command module.

A module of its own so that command modules (``cli_vqkd``) need not import ``cli``: under
``python -m vq_tokenizers.cli`` (torchrun) ``cli`` runs as ``__main__`` and importing it again from a
command module would re-enter the half-initialised registration loop.
"""

from __future__ import annotations

import json
from typing import Any

import click


def parse_overrides(pairs: tuple[str, ...], what: str) -> dict[str, Any]:
    """``key=value`` pairs (dotted keys nest, values parse as JSON when they can) -> nested dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint=what)
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        node = out
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    return out
