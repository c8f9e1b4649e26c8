"""Reference .npz round trip and refusal rules; image sources from folders and vq-data shard sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vq_eval import FeatureStatistics, ReferenceError, ReferenceStats, SourceError, open_images


def _stats(seed: int, n: int = 30, dim: int = 8) -> FeatureStatistics:
    stats = FeatureStatistics(dim)
    stats.update(np.random.default_rng(seed).normal(size=(n, dim)))
    return stats


def test_round_trip_keeps_arrays_and_provenance(tmp_path: Path) -> None:
    stats = _stats(0)
    meta = {"weights_sha256": "ab" * 32, "transform": "none", "manifest_sha256": None}
    path = ReferenceStats.from_statistics(stats, meta).save(tmp_path / "sub" / "ref.npz")
    loaded = ReferenceStats.load(path)
    np.testing.assert_array_equal(loaded.mu, stats.mean)
    np.testing.assert_array_equal(loaded.sigma, stats.covariance)
    assert loaded.n == 30 and loaded.meta == meta
    assert [p.name for p in path.parent.iterdir()] == ["ref.npz"]  # no temp file left behind
    with np.load(path, allow_pickle=False) as raw:  # plain arrays: readable without this package
        assert set(raw.files) == {"mu", "sigma", "n", "meta"}


def test_pytorch_fid_style_npz_loads(tmp_path: Path) -> None:
    np.savez(tmp_path / "pfid.npz", mu=np.zeros(4, np.float32), sigma=np.eye(4, dtype=np.float32))
    loaded = ReferenceStats.load(tmp_path / "pfid.npz")
    assert loaded.mu.dtype == np.float64 and loaded.n == 0 and loaded.meta == {}


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(ReferenceError, match=r"missing\.npz do not exist.*vq-eval fid-cache"):
        ReferenceStats.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", features=np.zeros(3))
    with pytest.raises(ReferenceError, match=r"bad\.npz lack 'mu'/'sigma'"):
        ReferenceStats.load(tmp_path / "bad.npz")
    a = ReferenceStats.from_statistics(_stats(1), {"weights_sha256": "a" * 64})
    b = ReferenceStats.from_statistics(_stats(2), {"weights_sha256": "b" * 64})
    with pytest.raises(ReferenceError, match="Inception weights bbbbbbbbbbbb but the reference used aaaaaaaaaaaa"):
        a.frechet_distance(b)
    with pytest.raises(ReferenceError, match="feature dimension 5 != reference 8"):
        a.frechet_distance(ReferenceStats.from_statistics(_stats(3, dim=5)))


def test_folder_source_order_limit_and_sizes(tmp_path: Path, make_photos) -> None:
    paths = make_photos(tmp_path / "imgs", 5, size=(40, 30))
    batches = open_images(tmp_path / "imgs", batch_size=2, limit=3)
    shapes = [tuple(b.shape) for b in batches]
    assert shapes == [(2, 3, 30, 40), (1, 3, 30, 40)]
    first = next(iter(batches))[0]
    expected = torch.from_numpy(np.array(Image.open(paths[0]))).permute(2, 0, 1).float() / 127.5 - 1
    torch.testing.assert_close(first, expected)
    assert batches.meta["source_kind"] == "folder" and batches.meta["num_files"] == 5
    make_photos(tmp_path / "imgs" / "nested", 1, size=(20, 20))
    with pytest.raises(SourceError, match="different sizes.*--image-size"):
        list(open_images(tmp_path / "imgs", batch_size=8))
    assert [tuple(b.shape) for b in open_images(tmp_path / "imgs", batch_size=8, image_size=16)] == [(6, 3, 16, 16)]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="contains no images"):
        open_images(tmp_path / "empty")


def test_shard_source_equals_folder_source(tmp_path: Path, make_photos) -> None:
    """Packed by vq-data at 24 px, the shard set gives the folder's resize+crop pixels and records the manifest."""
    from vq_data import make_source, pack

    make_photos(tmp_path / "imgs", 3, size=(40, 30))
    pack(make_source(str(tmp_path / "imgs"), kind="folder"), tmp_path / "shards", samples_per_shard=2, image_size=24)
    from_shards = open_images(tmp_path / "shards", batch_size=2)
    from_folder = open_images(tmp_path / "imgs", batch_size=2, image_size=24)
    shard_images = torch.cat(list(from_shards))
    folder_images = torch.cat(list(from_folder))
    assert shard_images.shape == (3, 3, 24, 24)
    # shards keep their own order; compare as sets of images
    matched = [min(float((s - f).abs().max()) for f in folder_images) for s in shard_images]
    assert max(matched) == 0.0
    assert from_shards.meta["source_kind"] == "shards" and len(from_shards.meta["manifest_sha256"]) == 64


@pytest.mark.parametrize("kind", ["folder", "shards"])
def test_ranks_read_disjoint_shares_that_cover_the_source(tmp_path: Path, make_photos, kind: str) -> None:
    """Over 2-4 ranks (with and without --limit) the ranks' images, in rank order, are exactly one process's images."""
    from vq_data import make_source, pack

    make_photos(tmp_path / "imgs", 5, size=(40, 30))
    source = tmp_path / "imgs"
    if kind == "shards":
        pack(make_source(str(source), kind="folder"), tmp_path / "shards", samples_per_shard=2, image_size=24)
        source = tmp_path / "shards"
    for limit in (None, 4):
        whole = torch.cat(list(open_images(source, batch_size=2, image_size=24, limit=limit)))
        for world in (2, 3, 4):
            shares = [list(open_images(source, batch_size=2, image_size=24, limit=limit, rank=r, world_size=world)) for r in range(world)]
            joined = torch.cat([batch for share in shares for batch in share])
            assert torch.equal(joined, whole), (limit, world)
    with pytest.raises(ValueError, match="both rank and world_size"):
        open_images(source, rank=1)
