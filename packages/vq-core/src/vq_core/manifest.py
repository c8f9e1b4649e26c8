"""The manifest that describes every shard set crossing a package border.

Image shards (written by vq-data) and token shards (written by vq-tokenizers, read by vq-ar and
vq-eval) share one frozen, versioned pydantic model.  Readers use :meth:`Manifest.check_tokenizer`
to refuse tokens made by a different tokenizer than the decoder or AR model they are handed.
The JSON schema is committed next to this module (``manifest.schema.json``) and a test keeps it
in sync, so tools outside Python can validate manifests too.
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from vq_core.io import atomic_write_text

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


class ManifestError(ValueError):
    """A manifest is missing, malformed, of another schema version, or does not match its reader."""


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())


SHARD_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,200}\.tar$"
"""A shard is a plain ``.tar`` file name inside the shard-set folder: no folder part, no leading dot."""
_SHARD_NAME = re.compile(SHARD_NAME_PATTERN)


def check_shard_name(name: object) -> str:
    """Refuse a shard name that is not a plain file name, so a manifest cannot point readers outside
    its folder (``../x.tar``, ``/etc/x.tar``); readers call it too, as manifests can be built unvalidated."""
    if not isinstance(name, str) or not _SHARD_NAME.match(name):
        raise ValueError(
            f"shard name {name!r} is not a plain '.tar' file name inside the shard-set folder "
            "(letters, digits, '_', '-', '.'; no '/' and no leading dot)"
        )
    return name


class ShardEntry(_Frozen):
    """One finished shard: its file name inside the manifest's folder, its sample count and hash."""

    name: str = Field(
        description="plain file name inside the shard-set folder", json_schema_extra={"pattern": SHARD_NAME_PATTERN}
    )
    num_samples: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        return check_shard_name(name)


class DatasetInfo(_Frozen):
    """Where the images came from and how they were labelled."""

    name: str
    source: str = Field(description="path or description of the original images")
    split: str | None = None
    description: str = ""
    num_classes: int = Field(default=0, ge=0)
    class_names: list[str] = Field(default_factory=list)
    image_size: int | None = Field(default=None, description="stored resolution; None keeps originals")
    transform: str = Field(default="", description="preprocessing applied before storing")


class TokenizerInfo(_Frozen):
    """Identity of the tokenizer that produced token shards."""

    name: str = Field(description="tokenizer family, e.g. vqgan, vqkd, cluster, fsq")
    config_hash: str
    checkpoint_sha256: str
    codebook_size: int = Field(gt=0)
    grid: tuple[int, ...] = Field(description="token grid per image: (h, w) or (n,)")
    dtype: Literal["int16", "int32"]
    image_size: int = Field(gt=0)
    checkpoint: str | None = Field(default=None, description="path of the checkpoint when tokenized")
    ten_crop: bool = False

    @model_validator(mode="after")
    def _dtype_holds_codebook(self) -> TokenizerInfo:
        if self.dtype == "int16" and self.codebook_size > 2**15:
            raise ValueError(f"codebook_size {self.codebook_size} does not fit dtype int16; use int32")
        return self


class Manifest(_Frozen):
    """A complete (or, while a job runs, partial) shard set."""

    schema_version: Literal[1] = SCHEMA_VERSION
    kind: Literal["images", "tokens"]
    dataset: DatasetInfo
    tokenizer: TokenizerInfo | None = None
    samples_per_shard: int = Field(gt=0)
    shards: list[ShardEntry] = Field(default_factory=list)
    complete: bool = False
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    tool: str
    tool_version: str

    @model_validator(mode="after")
    def _tokens_need_tokenizer(self) -> Manifest:
        if self.kind == "tokens" and self.tokenizer is None:
            raise ValueError("a 'tokens' manifest must name its tokenizer")
        return self

    @property
    def num_samples(self) -> int:
        return sum(s.num_samples for s in self.shards)

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Atomically write ``manifest.json`` into ``directory``."""
        path = Path(directory) / MANIFEST_NAME
        atomic_write_text(path, self.model_dump_json(indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Manifest:
        """Load from a ``manifest.json`` path or its directory, with errors that name the file."""
        path = Path(path)
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(f"no manifest at {path}; was the shard set written by vq-data/vq-tok?")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ManifestError(f"manifest {path} is not valid JSON: {err}") from err
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise ManifestError(
                f"manifest {path} has schema_version {version!r}; this tool reads version {SCHEMA_VERSION}"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as err:
            fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ManifestError(f"manifest {path} is invalid: {fields}") from err

    def check_tokenizer(
        self,
        *,
        codebook_size: int,
        config_hash: str | None = None,
        name: str | None = None,
        grid: tuple[int, ...] | None = None,
        where: str = "model",
        manifest: str | os.PathLike[str] | None = None,
        fix: str = "use the tokenizer that made these shards, or re-tokenize the images with this one",
    ) -> TokenizerInfo:
        """Refuse token shards whose tokenizer differs from what the caller was built for.

        ``config_hash`` is the caller's token-space identity (``Tokenizer.token_space_hash()``: config
        and token-deciding weights), so two tokenizers of one preset with other weights are told
        apart; ``manifest`` (the file's path) names the shard side and ``fix`` ends the one-line message.
        """
        shards, says = (f"the shards of {manifest}", f"manifest {manifest}") if manifest is not None else ("the shards", "manifest")
        if self.kind != "tokens" or self.tokenizer is None:
            raise ManifestError(f"manifest describes {self.kind!r} shards; expected token shards")
        tok = self.tokenizer
        problems = []
        if tok.codebook_size != codebook_size:
            problems.append(f"{where} has codebook {codebook_size} but {says} says {tok.codebook_size}")
        if config_hash is not None and tok.config_hash != config_hash:
            made_by = f"{tok.name} tokenizer {tok.checkpoint}" if tok.checkpoint else f"a {tok.name} tokenizer"
            problems.append(
                f"{where} has token space {config_hash} but {shards} were made by {made_by} (token space {tok.config_hash})"
            )
        if name is not None and tok.name != name:
            problems.append(f"{where} tokenizer is '{name}' but {says} says '{tok.name}'")
        if grid is not None and tuple(grid) != tuple(tok.grid):
            problems.append(f"{where} expects token grid {tuple(grid)} but {says} says {tuple(tok.grid)}")
        if problems:
            raise ManifestError("; ".join(problems) + f"; {fix}")
        return tok


def manifest_json_schema() -> str:
    """The JSON schema text committed as ``manifest.schema.json``."""
    return json.dumps(Manifest.model_json_schema(), indent=2, sort_keys=True) + "\n"
