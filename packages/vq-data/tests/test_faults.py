"""Fault injection on shards and sources: hostile members and names, flipped bytes, foreign files, crashes.

Every hostile shard here carries a manifest whose sha256 and size match it, so what refuses it is the
member check itself, not the hash.  The tars are built with :mod:`tarfile` directly, independently of
the project's writer.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from vq_core import DatasetInfo, Manifest, ManifestError, ShardEntry, TokenizerInfo, file_sha256
from vq_data import (
    FolderSource,
    ImageDecodeError,
    SampleError,
    ShardError,
    ShardSetWriter,
    check_key,
    iter_samples,
    key_output_path,
    pack,
    token_loader,
    verify_shards,
)
from vq_data.cli import main

TOKENIZER = TokenizerInfo(
    name="vqgan", config_hash="cafe", checkpoint_sha256="0" * 64, codebook_size=50, grid=(2, 3), dtype="int16", image_size=16
)
DATASET = DatasetInfo(name="t", source="test", num_classes=7)


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _member(name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _hostile_set(directory: Path, members: list[tuple[tarfile.TarInfo, bytes]], num_samples: int = 1) -> Path:
    """One shard holding exactly ``members``, and a complete manifest whose sha256/size match it."""
    directory.mkdir(parents=True, exist_ok=True)
    shard = directory / "shard-000000.tar"
    with tarfile.open(shard, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    entry = ShardEntry(name=shard.name, num_samples=num_samples, sha256=file_sha256(shard), size_bytes=shard.stat().st_size)
    Manifest(
        kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=4, shards=[entry], complete=True,
        tool="test", tool_version="0",
    ).save(directory)
    return shard


def _good(key: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [_member(f"{key}.tokens.npy", _npy(np.zeros((2, 3), np.int16))), _member(f"{key}.cls", b"1")]


def _token_set(directory: Path, n: int = 8, per_shard: int = 4) -> Path:
    with ShardSetWriter(
        directory, kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=per_shard, tool="t", tool_version="0"
    ) as writer:
        for i in range(writer.num_done, n):
            tokens = np.random.default_rng(i).integers(0, 50, (2, 3)).astype(np.int16)
            writer.write({"__key__": f"s{i:04d}", "tokens.npy": tokens, "cls": i % 7})
    return directory


def _flip_label(shard: Path, key: str) -> int:
    """Change the stored label of ``key`` (one byte, a valid digit, tar checksums untouched); the old label."""
    data = bytearray(shard.read_bytes())
    header = data.index(f"{key}.cls".encode())
    offset = header + 512  # the member's data block follows its 512-byte header
    old = int(chr(data[offset]))
    data[offset] = ord(str((old + 1) % 7))
    shard.write_bytes(bytes(data))
    return old


# --- keys and member names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key", ["/etc/passwd", "a/../../b", "..", "a//b", "a/", "nul\x00byte", "back\\slash", "x" * 1001, "a/" + "y" * 201]
)
def test_check_key_refuses_paths_that_leave_a_folder(key):
    from vq_data.shards.codec import encode_sample

    with pytest.raises(SampleError, match="sample key"):
        check_key(key)
    with pytest.raises(SampleError, match="sample key"):  # the writer's path
        encode_sample({"__key__": key, "cls": 1})


def test_check_key_accepts_nested_relative_keys():
    assert check_key("train/n01440764/img_0001_JPEG") == "train/n01440764/img_0001_JPEG"


@pytest.mark.parametrize(
    "name",
    ["../../evil.cls", "/tmp/evil.cls", "a/../../evil.cls", "evil", "a//b.cls", ".cls"],
    ids=["dotdot", "absolute", "inner", "nodot", "emptypart", "emptykey"],
)
def test_reader_refuses_unsafe_member_names_naming_shard_and_member(tmp_path, name):
    shard = _hostile_set(tmp_path, [*_good("s0000"), _member(name, b"1")], num_samples=2)
    with pytest.raises(ShardError, match=rf"{shard.name}.*unsafe name") as err:
        list(iter_samples(tmp_path))
    assert repr(name)[1:-1] in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ShardError, match="unsafe name"):  # the opt-out of hashing keeps the safety checks
        list(iter_samples(tmp_path, verify=False))


@pytest.mark.parametrize(
    ("kind", "link", "what"),
    [
        (tarfile.SYMTYPE, "/etc/passwd", "symbolic link"),
        (tarfile.LNKTYPE, "s0000.cls", "hard link"),
        (tarfile.DIRTYPE, "", "directory"),
        (tarfile.CHRTYPE, "", "device"),
        (tarfile.FIFOTYPE, "", "FIFO"),
    ],
)
def test_reader_refuses_link_device_and_directory_members(tmp_path, kind, link, what):
    shard = _hostile_set(tmp_path, [*_good("s0000"), _member("s0001.cls", kind=kind, link=link)], num_samples=2)
    with pytest.raises(ShardError, match=rf"{shard.name} holds a {what} member 's0001.cls'"):
        list(iter_samples(tmp_path))


def test_reader_refuses_a_key_split_over_the_shard(tmp_path):
    _hostile_set(tmp_path, [*_good("s0000"), *_good("s0001"), _member("s0000.json", b"{}")], num_samples=3)
    with pytest.raises(ShardError, match="key 's0000' twice"):
        list(iter_samples(tmp_path))


def test_member_claiming_more_than_the_shard_is_refused_before_it_is_read(tmp_path):
    shard = _hostile_set(tmp_path, _good("s0000"))
    data = bytearray(shard.read_bytes())
    info = tarfile.TarInfo("s0000.tokens.npy")
    info.size = 8_000_000_000  # a header alone can ask for 8 GB
    header = info.tobuf(tarfile.USTAR_FORMAT)
    start = data.index(b"s0000.tokens.npy")
    data[start : start + 512] = header
    shard.write_bytes(bytes(data))
    manifest = Manifest.load(tmp_path)
    entry = manifest.shards[0].model_copy(update={"sha256": file_sha256(shard)})
    manifest.model_copy(update={"shards": [entry]}).save(tmp_path)
    with pytest.raises(ShardError, match="claims 8000000000 bytes"):
        list(iter_samples(tmp_path))


def test_key_output_path_stays_inside_the_folder(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    assert key_output_path(out, "a/b", ".png") == (out / "a" / "b.png").resolve()
    for key in ("../escape", "/abs/x"):
        with pytest.raises(SampleError):
            key_output_path(out, key, ".png")
    (out / "link").symlink_to(tmp_path)  # a link planted inside the output folder
    with pytest.raises(SampleError, match="outside the output folder"):
        key_output_path(out, "link/escape", ".png")


# --- manifest shard names ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../x.tar", "/etc/x.tar", "sub/x.tar", ".hidden.tar", "x.tar/..", "x\x00.tar"])
def test_manifest_shard_names_must_be_plain_files_in_the_folder(tmp_path, name):
    _token_set(tmp_path / "set", n=4)
    (tmp_path / "x.tar").write_bytes((tmp_path / "set" / "shard-000000.tar").read_bytes())  # bait outside the set
    path = tmp_path / "set" / "manifest.json"
    data = json.loads(path.read_text())
    data["shards"][0]["name"] = name
    path.write_text(json.dumps(data))
    with pytest.raises(ManifestError, match="plain '.tar' file name"):
        list(iter_samples(tmp_path / "set"))
    result = CliRunner().invoke(main, ["verify", str(tmp_path / "set")])
    assert result.exit_code == 1 and result.output.startswith("Error: manifest") and result.output.count("\n") == 1


def test_readers_recheck_shard_names_of_unvalidated_manifests(tmp_path):
    _token_set(tmp_path / "set", n=4)
    manifest = Manifest.load(tmp_path / "set")
    bad = ShardEntry.model_construct(**{**manifest.shards[0].model_dump(), "name": "../x.tar"})
    with pytest.raises(ShardError, match="unsafe shard"):
        list(iter_samples(tmp_path / "set", manifest=manifest.model_copy(update={"shards": [bad]})))


# --- hashing while streaming ----------------------------------------------------------------------------------------


def test_flipped_label_byte_is_refused_by_every_reader_and_read_with_no_verify(tmp_path):
    _token_set(tmp_path)
    shard = tmp_path / "shard-000001.tar"
    old = _flip_label(shard, "s0005")
    unchecked = {s["__key__"]: s["cls"] for s in iter_samples(tmp_path, verify=False)}
    assert unchecked["s0005"] == (old + 1) % 7  # the flip is real: without verification it is trained on
    with pytest.raises(ShardError, match=r"shard-000001\.tar does not match its manifest \(sha256"):
        list(iter_samples(tmp_path))
    with pytest.raises(ShardError, match=r"shard-000001\.tar does not match"):
        list(token_loader(tmp_path, 2, shuffle=False))
    assert len(list(token_loader(tmp_path, 2, shuffle=False, verify=False))) == 4
    assert any("shard-000001.tar does not match" in p for p in verify_shards(tmp_path))


def test_a_rank_reading_part_of_a_shard_still_verifies_all_of_it(tmp_path):
    _token_set(tmp_path, n=6, per_shard=6)
    _flip_label(tmp_path / "shard-000000.tar", "s0005")  # in rank 1's half of the only shard
    with pytest.raises(ShardError, match="does not match"):
        list(token_loader(tmp_path, 3, shuffle=False, rank=0, world_size=2))
    batches = list(token_loader(tmp_path, 3, shuffle=False, rank=0, world_size=2, verify=False))
    assert [len(b[1]) for b in batches] == [3]


def test_resumed_loader_is_bit_identical_and_still_verifies(tmp_path):
    _token_set(tmp_path, n=12, per_shard=4)
    full = token_loader(tmp_path, 2, seed=3, shuffle_buffer=3)
    straight = list(full)
    first = token_loader(tmp_path, 2, seed=3, shuffle_buffer=3)
    iterator = iter(first)
    head = [next(iterator) for _ in range(3)]
    state = first.state_dict()
    resumed = token_loader(tmp_path, 2, seed=3, shuffle_buffer=3)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(head) + len(rest) == len(straight)
    for a, b in zip(head + rest, straight):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    for k in range(3):  # the first sample of every shard: the resumed run skips some of them unread
        _flip_label(tmp_path / f"shard-{k:06d}.tar", f"s{4 * k:04d}")
    again = token_loader(tmp_path, 2, seed=3, shuffle_buffer=3)
    again.load_state_dict(state)
    with pytest.raises(ShardError, match="does not match"):
        list(again)


def test_sample_count_is_checked_against_the_manifest(tmp_path):
    _token_set(tmp_path, n=4)
    manifest = Manifest.load(tmp_path)
    wrong = manifest.shards[0].model_copy(update={"num_samples": 5})
    manifest.model_copy(update={"shards": [wrong]}).save(tmp_path)
    with pytest.raises(ShardError, match="holds 4 samples but the manifest says 5"):
        list(iter_samples(tmp_path))
    with pytest.raises(ShardError, match="holds 4 samples but the manifest says 5"):
        list(iter_samples(tmp_path, verify=False))


def test_verification_reads_each_shard_once(tmp_path, monkeypatch):
    _token_set(tmp_path, n=8)
    opened: list[str] = []
    real_open = open

    def counting_open(file, mode="r", *args, **kwargs):
        if str(file).endswith(".tar"):
            opened.append(Path(file).name)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    assert len(list(iter_samples(tmp_path))) == 8
    assert opened == ["shard-000000.tar", "shard-000001.tar"]


def test_cli_flipped_byte_is_one_line(tmp_path):
    _token_set(tmp_path)
    _flip_label(tmp_path / "shard-000000.tar", "s0001")
    result = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "shard-000000.tar does not match its manifest" in result.output


# --- writers never delete what they did not write -------------------------------------------------------------------


def _foreign_shard(directory: Path, name: str = "shard-000000.tar") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(b"someone else's shard")
    return directory / name


def test_writer_refuses_a_folder_holding_foreign_shards(tmp_path):
    foreign = _foreign_shard(tmp_path)
    with pytest.raises(ManifestError, match=r"already holds shard files this job did not write \(shard-000000\.tar\)"):
        _token_set(tmp_path)
    assert foreign.read_bytes() == b"someone else's shard" and not (tmp_path / "manifest.json").exists()
    ShardSetWriter(tmp_path, kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=4, tool="t",
                   tool_version="0", overwrite=True)  # fmt: skip
    assert not foreign.exists()


def test_foreign_shards_beside_a_partial_manifest_are_refused_too(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with ShardSetWriter(tmp_path, kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=4, tool="t",
                            tool_version="0") as writer:  # fmt: skip
            for i in range(5):
                writer.write({"__key__": f"s{i:04d}", "tokens.npy": np.zeros((2, 3), np.int16), "cls": 0})
            raise KeyboardInterrupt
    foreign = _foreign_shard(tmp_path, "shard-extra.tar")
    with pytest.raises(ManifestError, match="shard-extra.tar"):
        _token_set(tmp_path)
    assert foreign.exists()


def test_kill_between_writing_and_recording_a_shard_still_resumes_byte_identically(tmp_path, monkeypatch):
    _token_set(tmp_path / "straight", n=10)
    saves = {"n": 0}
    real_save = Manifest.save

    def killed_save(self, directory):
        saves["n"] += 1
        if saves["n"] == 3:  # initial save, shard 0 recorded, then killed after renaming shard 1
            raise KeyboardInterrupt
        return real_save(self, directory)

    monkeypatch.setattr(Manifest, "save", killed_save)
    with pytest.raises(KeyboardInterrupt):
        _token_set(tmp_path / "crashed", n=10)
    monkeypatch.setattr(Manifest, "save", real_save)
    assert (tmp_path / "crashed" / "shard-000001.tar").exists()  # written but never recorded
    assert len(Manifest.load(tmp_path / "crashed").shards) == 1
    _token_set(tmp_path / "crashed", n=10)
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
        assert (tmp_path / "crashed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()


def test_cli_pack_refuses_foreign_shards_in_one_line(tmp_path, image_folder):
    foreign = _foreign_shard(tmp_path / "out")
    result = CliRunner().invoke(main, ["pack", str(image_folder), "--out", str(tmp_path / "out"), "--image-size", "8"])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.output.count("\n") == 1
    assert result.output.startswith("Error: ") and "shard-000000.tar" in result.output and "--overwrite" in result.output
    assert foreign.exists()
    again = CliRunner().invoke(main, ["pack", str(image_folder), "--out", str(tmp_path / "out"), "--image-size", "8", "--overwrite"])
    assert again.exit_code == 0 and verify_shards(tmp_path / "out") == []


def test_stale_manifest_temp_files_are_removed_on_the_next_run(tmp_path, monkeypatch):
    _token_set(tmp_path, n=2)
    manifest = Manifest.load(tmp_path)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:  # kill -9 between the temp write and the rename: no clean-up runs
        patch.setattr(os, "replace", killed)
        patch.setattr(os, "unlink", lambda *a, **k: None)
        with pytest.raises(KeyboardInterrupt):
            manifest.save(tmp_path)
    assert len(list(tmp_path.glob(".manifest.json.*.tmp"))) == 1
    with ShardSetWriter(tmp_path, kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=4, tool="t",
                        tool_version="0"):  # fmt: skip
        pass
    assert not list(tmp_path.glob(".*.tmp"))


# --- folder sources -----------------------------------------------------------------------------------------------


def test_empty_class_folder_keeps_its_id_so_train_and_val_agree(tmp_path, write_image):
    for split, classes in {"train": ("cat", "dog", "emu"), "val": ("cat", "emu")}.items():
        for cls in classes:
            write_image(tmp_path / split / cls / "a.png", 0)
    (tmp_path / "val" / "dog").mkdir()  # val has no dog images
    train, val = FolderSource(tmp_path / "train"), FolderSource(tmp_path / "val")
    assert train.class_names == val.class_names == ["cat", "dog", "emu"]
    ids = [{r.source_id.split("/")[0]: r.label for r in source.records()} for source in (train, val)]
    assert ids[0] == {"cat": 0, "dog": 1, "emu": 2} and ids[1] == {"cat": 0, "emu": 2}


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A 100-byte PNG whose header declares ``width`` x ``height``, with one row of pixel data at most."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b""))
    return path


def test_pixel_cap_is_checked_from_the_header_before_decoding(tmp_path, write_image):
    write_image(tmp_path / "src" / "a" / "small.png", 0)
    big = _png_header_only(tmp_path / "src" / "a" / "huge.png", 12000, 9000)  # 108 Mpx, no pixel data
    with pytest.raises(ImageDecodeError, match=r"huge\.png is 12000x9000 = 108\.0 Mpx, more than the cap of 89\.5 Mpx"):
        pack(FolderSource(tmp_path / "src"), tmp_path / "out", image_size=8)
    small = FolderSource(tmp_path / "src", max_pixels=1000)  # 40x30 = 1200 pixels
    with pytest.raises(ImageDecodeError, match=r"small\.png is 40x30 = 1200 pixels, more than the cap of 1000 pixels"):
        [r.open() for r in small.records() if r.source_id.endswith("small.png")]
    assert Image.open(big).size == (12000, 9000)


def test_cli_pixel_cap_is_one_line_and_skippable(tmp_path, write_image):
    write_image(tmp_path / "src" / "a" / "small.png", 0)
    write_image(tmp_path / "src" / "a" / "wide.png", 1, size=(80, 20))
    args = ["pack", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--image-size", "8", "--max-pixels", "1500"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and result.output.count("\n") == 1 and "wide.png is 80x20" in result.output
    skipped = CliRunner().invoke(main, [*args, "--skip-bad", "--overwrite"])
    assert skipped.exit_code == 0 and "1 images" in skipped.output and "1 skipped" in skipped.output
