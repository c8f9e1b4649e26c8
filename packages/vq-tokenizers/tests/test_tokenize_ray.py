"""``tokenize_shards_ray`` (Ray Data actor pool) writes the same token shard set as ``tokenize_shards``.

Reference: the single-process path on the same tiny tokenizer and 36 bundled 32 px crops.  Equal means
the same tokens per key, byte-identical shard files (sha256) and the same manifest apart from its
creation time; a killed Ray run (partial manifest + an unrecorded stray shard) resumes to the same set.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vq_core import Manifest, file_sha256
from vq_data import iter_samples, make_source, pack
from vq_tokenizers import build_tokenizer, get_preset, save_tokenizer
from vq_tokenizers.tokenize import tokenize_shards
from vq_tokenizers.tokenize_ray import tokenize_shards_ray

SHARD = 8  # 36 images -> 5 shards, the last one short
BATCH = 4


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("inputs")
    pack(make_source("bundled", crops_per_image=2, seed=0), root / "images", samples_per_shard=16, image_size=32)
    torch.manual_seed(0)
    model = build_tokenizer("vqgan", get_preset("tiny", "vqgan").model).eval()
    return save_tokenizer(model, root / "tiny.safetensors"), root / "images"


@pytest.fixture(scope="module")
def reference(inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    ckpt, images = inputs
    out = tmp_path_factory.mktemp("single") / "tokens"
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tokenize_shards(ckpt, images, out, samples_per_shard=SHARD, batch_size=BATCH, device="cpu")
    finally:
        torch.set_num_threads(before)
    return out


def _without_time(directory: Path) -> dict:
    return Manifest.load(directory).model_dump(exclude={"created"})


def _tokens(directory: Path) -> dict[str, tuple[np.ndarray, int]]:
    return {s["__key__"]: (np.asarray(s["tokens.npy"]), int(s["cls"])) for s in iter_samples(directory)}


def _assert_same_set(ray_out: Path, reference: Path) -> None:
    assert _without_time(ray_out) == _without_time(reference)
    names = sorted(p.name for p in reference.glob("*.tar"))
    assert sorted(p.name for p in ray_out.glob("*.tar")) == names
    for name in names:
        assert file_sha256(ray_out / name) == file_sha256(reference / name), name
    ours, theirs = _tokens(ray_out), _tokens(reference)
    assert list(ours) == list(theirs)
    for key, (tokens, label) in theirs.items():
        np.testing.assert_array_equal(ours[key][0], tokens)
        assert ours[key][1] == label
    assert not list(ray_out.glob(".ray-*")), "scratch directories left behind"


def test_ray_actor_pool_writes_the_single_process_shards(ray_local, inputs, reference, tmp_path: Path) -> None:
    ckpt, images = inputs
    manifest = tokenize_shards_ray(ckpt, images, tmp_path / "tokens", samples_per_shard=SHARD, batch_size=BATCH, num_workers=2)
    assert manifest.complete and manifest.num_samples == 36 and len(manifest.shards) == 5
    assert len({len(t) for t, _ in _tokens(reference).values()}) == 1
    _assert_same_set(tmp_path / "tokens", reference)


def test_killed_ray_run_resumes_to_the_same_set(ray_local, inputs, reference, tmp_path: Path) -> None:
    ckpt, images = inputs
    out = tmp_path / "tokens"
    # What a job killed after recording two shards leaves: a partial manifest, a later shard written
    # but never recorded (must be deleted, not trusted) and an actor's scratch directory.  (The two
    # recorded shards are the reference's: the first test shows both paths write the same bytes.)
    shutil.copytree(reference, out)
    full = Manifest.load(out)
    full.model_copy(update={"shards": full.shards[:2], "complete": False}).save(out)
    (out / "shard-000003.tar").write_bytes(b"garbage")
    (out / ".ray-shard-000004").mkdir()
    kept = [(out / f"shard-00000{i}.tar").stat().st_ino for i in (0, 1)]
    manifest = tokenize_shards_ray(ckpt, images, out, samples_per_shard=SHARD, batch_size=BATCH, num_workers=2)
    assert manifest.complete
    assert [(out / f"shard-00000{i}.tar").stat().st_ino for i in (0, 1)] == kept, "recorded shards were redone"
    _assert_same_set(out, reference)
