"""Base class and hashing for the pydantic configs that build every model.

A config, a CLI flag and a checkpoint describe the same thing: the config is saved inside each
checkpoint and its hash goes into token-shard manifests, so a reader can refuse tokens that were
made by a different tokenizer than the one it is given.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

C = TypeVar("C", bound="StrictConfig")


class ConfigError(ValueError):
    """A config file or dict does not validate; the message names the source and the fields."""


class StrictConfig(BaseModel):
    """Config base: unknown fields are errors (a typo must not silently fall back to a default)."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    def config_hash(self) -> str:
        """Stable sha256 of the canonical JSON form (sorted keys), first 16 hex digits."""
        return config_hash(self)

    @classmethod
    def from_file(cls: type[C], path: str | Path) -> C:
        """Load from a JSON or YAML file with an error that names the file and the bad fields."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        text = path.read_text(encoding="utf-8")
        if path.suffix in {".yaml", ".yml"}:
            import yaml  # optional dependency: only needed for YAML configs

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any], *, source: str = "<dict>") -> C:
        """Validate ``data``; on failure list every bad field with the source it came from."""
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
            )
            raise ConfigError(f"{source}: invalid {cls.__name__}: {problems}") from err


def config_hash(config: BaseModel) -> str:
    """Hash of a config's canonical JSON, shared by checkpoints and manifests."""
    canonical = json.dumps(config.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def field_docs(model: type[BaseModel], prefix: str = "") -> dict[str, str]:
    """Dotted field path -> its description, for ``model`` and every config nested in it (the
    documentation ``vq-tok presets --show`` prints beside a preset's resolved fields)."""
    docs: dict[str, str] = {}
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        if field.description:
            docs[path] = " ".join(field.description.split())
        for candidate in (field.annotation, *get_args(field.annotation)):  # X, or X | None
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                docs.update(field_docs(candidate, f"{path}."))
                break
    return docs
