"""Configs that gain fields without changing the hash of configs written before.

A quantizer config's hash identifies a checkpoint (resume refuses another config) and a token
space (shard manifests record it). A field added later is therefore left out of the dump while it
holds its default: a config that does not use the new option dumps, saves and hashes exactly as it
did before the option existed, and loading the old dump restores the default.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import SerializerFunctionWrapHandler, model_serializer

from vq_core.config import StrictConfig


class ExtensibleConfig(StrictConfig):
    """:class:`StrictConfig` whose ``added_fields`` are dumped only when they differ from their default."""

    added_fields: ClassVar[tuple[str, ...]] = ()

    @model_serializer(mode="wrap")
    def _omit_added_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = handler(self)
        fields = type(self).model_fields
        for name in self.added_fields:
            if name in data and getattr(self, name) == fields[name].default:
                del data[name]
        return data
