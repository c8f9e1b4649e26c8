"""Fault injection on the shards vq-tok reads and writes: hostile keys, flipped bytes, foreign shards.

Hostile token shards are built with :mod:`tarfile` and carry a manifest whose hash matches them and
whose tokenizer is the real one, so only the key and path checks stand between them and the disk.
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from vq_core import DatasetInfo, Manifest, ManifestError, ShardEntry, file_sha256
from vq_data import SampleError, ShardError, ShardSetWriter, iter_samples
from vq_tokenizers import build_tokenizer, get_preset, load_tokenizer, save_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.tokenize import decode_shards, tokenize_shards, tokenizer_info

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = build_tokenizer("vqgan", get_preset("tiny", "vqgan").model).eval()
    return save_tokenizer(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def _png(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, format="png")
    return buffer.getvalue()


@pytest.fixture
def image_shards(tmp_path) -> Path:
    root = tmp_path / "images"
    with ShardSetWriter(
        root, kind="images", dataset=DatasetInfo(name="rand", source="test", num_classes=3), samples_per_shard=3,
        tool="test", tool_version="0",
    ) as writer:
        for i in range(6):
            writer.write({"__key__": f"img{i:03d}", "png": _png(i), "cls": i % 3})
    return root


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _hostile_tokens(directory: Path, checkpoint: Path, keys: list[str]) -> Path:
    """A token shard set of the real tokenizer whose member names use ``keys`` verbatim."""
    model = load_tokenizer(checkpoint)
    info = tokenizer_info(model, checkpoint)
    directory.mkdir(parents=True)
    shard = directory / "shard-000000.tar"
    with tarfile.open(shard, "w") as tar:
        for key in keys:
            for field, data in (("tokens.npy", _npy(np.zeros(model.grid, np.int16))), ("cls", b"0")):
                member = tarfile.TarInfo(f"{key}.{field}")
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
    entry = ShardEntry(name=shard.name, num_samples=len(keys), sha256=file_sha256(shard), size_bytes=shard.stat().st_size)
    Manifest(
        kind="tokens", dataset=DatasetInfo(name="x", source="x"), tokenizer=info, samples_per_shard=len(keys),
        shards=[entry], complete=True, tool="test", tool_version="0",
    ).save(directory)
    return directory


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("key", ["../../escaped", "{abs}/escaped"], ids=["dotdot", "absolute"])
def test_decode_never_writes_outside_out(tmp_path, checkpoint, key):
    key = key.format(abs=tmp_path / "victim")
    tokens = _hostile_tokens(tmp_path / "tokens", checkpoint, ["ok", key])
    before = _files(tmp_path)
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(ShardError, match="unsafe name"):
        decode_shards(tokens, checkpoint, out, device="cpu")
    assert not any(p for p in _files(tmp_path) - before if out not in p.parents)
    result = CliRunner().invoke(main, ["decode", str(tokens), "--ckpt", str(checkpoint), "--out", str(out), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.count("\n") == 1
    assert result.output.startswith("Error: shard") and "shard-000000.tar" in result.output and "unsafe name" in result.output


def test_decode_refuses_a_link_inside_out_that_leads_elsewhere(tmp_path, checkpoint):
    tokens = _hostile_tokens(tmp_path / "tokens", checkpoint, ["sub/img"])
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(SampleError, match="outside the output folder"):
        decode_shards(tokens, checkpoint, out, device="cpu")
    assert not list((tmp_path / "elsewhere").iterdir())


def _flip_label(shard: Path, key: str) -> None:
    data = bytearray(shard.read_bytes())
    offset = data.index(f"{key}.cls".encode()) + 512
    data[offset] = ord("2") if data[offset] != ord("2") else ord("1")
    shard.write_bytes(bytes(data))


def test_flipped_label_is_not_carried_into_a_fresh_token_set(tmp_path, checkpoint, image_shards):
    _flip_label(image_shards / "shard-000001.tar", "img004")
    with pytest.raises(ShardError, match=r"shard-000001\.tar does not match its manifest"):
        tokenize_shards(checkpoint, image_shards, tmp_path / "tokens", samples_per_shard=4, device="cpu")
    args = ["tokenize", str(image_shards), "--ckpt", str(checkpoint), "--out", str(tmp_path / "cli"), "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "--no-verify" in result.output
    opted_out = CliRunner().invoke(main, [*args, "--no-verify"])
    assert opted_out.exit_code == 0, opted_out.output
    labels = {s["__key__"]: s["cls"] for s in iter_samples(tmp_path / "cli")}
    assert labels["img004"] == 2  # read unchecked on request: the flipped label (it was 1)


def test_tokenize_refuses_an_out_folder_holding_foreign_shards(tmp_path, checkpoint, image_shards):
    out = tmp_path / "tokens"
    out.mkdir()
    (out / "shard-000000.tar").write_bytes(b"another group's tokens")
    with pytest.raises(ManifestError, match="did not write"):
        tokenize_shards(checkpoint, image_shards, out, device="cpu")
    args = ["tokenize", str(image_shards), "--ckpt", str(checkpoint), "--out", str(out), "--device", "cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "--overwrite" in result.output
    assert (out / "shard-000000.tar").read_bytes() == b"another group's tokens"
    assert CliRunner().invoke(main, [*args, "--overwrite"]).exit_code == 0
    assert len(list(iter_samples(out))) == 6


def test_decode_limit_still_verifies_the_last_shard_it_opens(tmp_path, checkpoint, image_shards):
    tokens = tmp_path / "tokens"
    tokenize_shards(checkpoint, image_shards, tokens, samples_per_shard=4, device="cpu")
    _flip_label(tokens / "shard-000000.tar", "img003")  # after the limit, in the shard the limit ends in
    with pytest.raises(ShardError, match="does not match"):
        decode_shards(tokens, checkpoint, tmp_path / "png", limit=2, device="cpu")
    assert len(decode_shards(tokens, checkpoint, tmp_path / "png2", limit=2, device="cpu", verify=False)) == 2
