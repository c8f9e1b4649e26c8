"""Shared contracts: atomic writes, configs, checkpoints and the manifest schema."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import Field

from vq_core import (
    CheckpointError,
    ConfigError,
    DatasetInfo,
    Manifest,
    ManifestError,
    ShardEntry,
    StrictConfig,
    TokenizerInfo,
    atomic_write,
    atomic_write_text,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
)
from vq_core.manifest import SCHEMA_PATH, manifest_json_schema


class TinyConfig(StrictConfig):
    width: int = Field(default=4, gt=0)
    name: str = "tiny"


def test_atomic_write_keeps_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]  # no temp file left behind


def test_file_sha256_matches_hashlib(tmp_path):
    import hashlib

    data = bytes(range(256)) * 5000
    (tmp_path / "f").write_bytes(data)
    assert file_sha256(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_config_rejects_unknown_fields_and_names_the_source(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"width": 3, "widht": 5}))
    with pytest.raises(ConfigError, match=r"c\.json.*widht"):
        TinyConfig.from_file(path)
    with pytest.raises(ConfigError, match="width"):
        TinyConfig.from_dict({"width": 0})


def test_config_hash_is_stable_and_sensitive():
    assert TinyConfig(width=3).config_hash() == TinyConfig(width=3).config_hash()
    assert TinyConfig(width=3).config_hash() != TinyConfig(width=4).config_hash()


def test_checkpoint_round_trip_and_errors(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(
        tmp_path / "m.safetensors", family="tiny", config=TinyConfig(width=3), model=model.state_dict(), step=7, state={"k": 1}
    )
    ckpt = load_checkpoint(path, family="tiny")
    assert ckpt.step == 7 and ckpt.state == {"k": 1} and TinyConfig(**ckpt.config) == TinyConfig(width=3)
    assert ckpt.config_hash == TinyConfig(width=3).config_hash()
    torch.testing.assert_close(ckpt.model["weight"], model.weight.detach())
    with pytest.raises(CheckpointError, match="holds a 'tiny' model, expected 'vqgan'"):
        load_checkpoint(path, family="vqgan")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.safetensors")
    (tmp_path / "bad.safetensors").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="unreadable"):
        load_checkpoint(tmp_path / "bad.safetensors")


def _tokens_manifest(**tok) -> Manifest:
    info = dict(
        name="vqgan", config_hash="abc", checkpoint_sha256="0" * 64, codebook_size=1024, grid=(16, 16), dtype="int16", image_size=256
    )
    info.update(tok)
    return Manifest(
        kind="tokens",
        dataset=DatasetInfo(name="d", source="/data"),
        tokenizer=TokenizerInfo(**info),
        samples_per_shard=10,
        shards=[ShardEntry(name="shard-000000.tar", num_samples=10, sha256="f" * 64, size_bytes=5)],
        tool="test",
        tool_version="0",
    )


def test_committed_json_schema_is_current():
    assert SCHEMA_PATH.read_text() == manifest_json_schema(), "regenerate manifest.schema.json"


def test_manifest_round_trip_and_version_check(tmp_path):
    manifest = _tokens_manifest()
    manifest.save(tmp_path)
    assert Manifest.load(tmp_path) == manifest
    data = json.loads((tmp_path / "manifest.json").read_text())
    data["schema_version"] = 2
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="schema_version 2"):
        Manifest.load(tmp_path)
    data["schema_version"] = 1
    data["surprise"] = True
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="surprise"):
        Manifest.load(tmp_path)
    with pytest.raises(ManifestError, match="no manifest"):
        Manifest.load(tmp_path / "elsewhere")


def test_manifest_validation_rules():
    with pytest.raises(ValueError, match="must name its tokenizer"):
        Manifest(kind="tokens", dataset=DatasetInfo(name="d", source="s"), samples_per_shard=1, tool="t", tool_version="0")
    with pytest.raises(ValueError, match="does not fit dtype int16"):
        _tokens_manifest(codebook_size=65536)


def test_check_tokenizer_names_both_sides():
    manifest = _tokens_manifest()
    assert manifest.check_tokenizer(codebook_size=1024, config_hash="abc", grid=(16, 16)).name == "vqgan"
    with pytest.raises(ManifestError, match="model has codebook 8192 but manifest says 1024"):
        manifest.check_tokenizer(codebook_size=8192)
    with pytest.raises(ManifestError, match="model has token space zzz but the shards were made by a vqgan tokenizer"):
        manifest.check_tokenizer(codebook_size=1024, config_hash="zzz")


def test_check_tokenizer_names_both_token_spaces_files_and_the_fix():
    manifest = _tokens_manifest(checkpoint="/ckpts/a.safetensors")
    with pytest.raises(ManifestError) as err:
        manifest.check_tokenizer(codebook_size=1024, config_hash="zzz", where="tokenizer b.safetensors", manifest="/t/manifest.json")
    message = str(err.value)
    assert "\n" not in message
    assert "tokenizer b.safetensors has token space zzz" in message
    assert "shards of /t/manifest.json were made by vqgan tokenizer /ckpts/a.safetensors (token space abc)" in message
    assert message.endswith("use the tokenizer that made these shards, or re-tokenize the images with this one")
