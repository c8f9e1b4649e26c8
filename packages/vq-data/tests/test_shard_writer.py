"""The resumable shard writer: crash safety, byte-identical resume, refusal of mismatched resumes."""

from __future__ import annotations

import numpy as np
import pytest

from vq_core import DatasetInfo, ManifestError, TokenizerInfo
from vq_data import SampleError, ShardError, ShardSetWriter, iter_samples, iter_shard, verify_shards

DATASET = DatasetInfo(name="synthetic", source="test")
TOKENIZER = TokenizerInfo(
    name="vqgan", config_hash="abc", checkpoint_sha256="0" * 64, codebook_size=1024, grid=(4, 4), dtype="int16", image_size=64
)


def _sample(i: int) -> dict:
    rng = np.random.default_rng(i)
    return {"__key__": f"img{i:05d}", "tokens.npy": rng.integers(0, 1024, (4, 4)).astype(np.int16), "cls": i % 3, "json": {"i": i}}


def _writer(directory, **kw) -> ShardSetWriter:
    return ShardSetWriter(
        directory, kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=4, tool="test", tool_version="0", **kw
    )


def _write_all(directory, n: int, crash_after: int | None = None) -> None:
    with _writer(directory) as writer:
        for i in range(writer.num_done, n):
            if crash_after is not None and i == crash_after:
                raise KeyboardInterrupt
            writer.write(_sample(i))


def test_round_trip_equal_shards(tmp_path):
    _write_all(tmp_path, 10)
    samples = list(iter_samples(tmp_path))
    assert [s["__key__"] for s in samples] == [f"img{i:05d}" for i in range(10)]
    for i, sample in enumerate(samples):
        np.testing.assert_array_equal(sample["tokens.npy"], _sample(i)["tokens.npy"])
        assert sample["tokens.npy"].dtype == np.int16 and sample["cls"] == i % 3 and sample["json"] == {"i": i}
    manifest = _writer(tmp_path).manifest
    assert manifest.complete and [s.num_samples for s in manifest.shards] == [4, 4, 2]
    assert verify_shards(tmp_path) == []


def test_killed_job_resumes_to_byte_identical_shards(tmp_path):
    _write_all(tmp_path / "straight", 10)
    with pytest.raises(KeyboardInterrupt):
        _write_all(tmp_path / "crashed", 10, crash_after=6)
    partial = _writer(tmp_path / "crashed")
    assert partial.num_done == 4 and not partial.complete  # only the whole first shard survived
    with pytest.raises(ManifestError, match="incomplete"):
        list(iter_samples(tmp_path / "crashed"))
    _write_all(tmp_path / "crashed", 10)
    for name in ("shard-000000.tar", "shard-000001.tar", "shard-000002.tar"):
        assert (tmp_path / "crashed" / name).read_bytes() == (tmp_path / "straight" / name).read_bytes()


def test_resume_refuses_other_settings_and_tampered_shards(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        _write_all(tmp_path, 10, crash_after=5)
    with pytest.raises(ManifestError, match="different samples_per_shard"):
        ShardSetWriter(tmp_path, kind="tokens", dataset=DATASET, tokenizer=TOKENIZER, samples_per_shard=5, tool="t", tool_version="0")
    (tmp_path / "shard-000000.tar").write_bytes(b"garbage")
    with pytest.raises(ManifestError, match="does not match its sha256"):
        _writer(tmp_path)
    assert _writer(tmp_path, overwrite=True).num_done == 0


def test_corrupt_shard_and_bad_keys_are_named(tmp_path):
    _write_all(tmp_path, 8)
    shard = tmp_path / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:700])
    with pytest.raises(ShardError, match="shard-000001.tar"):
        list(iter_shard(shard))
    assert any("shard-000001.tar" in p for p in verify_shards(tmp_path))
    with pytest.raises(SampleError, match="no dots"):
        _writer(tmp_path / "other").write({"__key__": "a.b", "cls": 1})
