"""The vq-eval FID commands end to end, with random Inception weights from a file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from vq_core import file_sha256
from vq_eval import ReferenceStats, inception_statistics, open_images
from vq_eval.cli import main


def test_fid_cache_fid_and_generation(tmp_path: Path, photo_folder: Path, inception_weights: Path, inception, run_cli) -> None:
    ref = tmp_path / "ref.npz"
    output = run_cli("fid-cache", photo_folder, "--out", ref, "--inception-weights", inception_weights, "--batch-size", 2, "--device", "cpu")
    assert "3 images, 2048-d features" in output
    reference = ReferenceStats.load(ref)
    stats, _ = inception_statistics(inception, open_images(photo_folder, batch_size=3))
    np.testing.assert_allclose(reference.mu, stats.mean, rtol=1e-6)
    assert reference.n == 3
    assert reference.meta["weights_sha256"] == file_sha256(inception_weights)
    assert reference.meta["source_kind"] == "folder" and reference.meta["transform"] == "none"
    assert "bilinear resize to 299x299" in reference.meta["network_resize"]

    out = tmp_path / "fid.json"
    run_cli("fid", photo_folder, "--ref", ref, "--out", out, "--inception-weights", inception_weights, "--device", "cpu")
    fid = json.loads(out.read_text())
    assert fid["num_images"] == 3 and abs(fid["fid"]) < 1e-6 * np.trace(reference.sigma)

    out = tmp_path / "gen.json"
    result = CliRunner().invoke(
        main, ["generation", str(photo_folder), "--ref", str(ref), "--out", str(out), "--inception-weights", str(inception_weights),
               "--device", "cpu", "--kid-subsets", "2", "--nearest-k", "1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + result.stderr
    gen = json.loads(out.read_text())
    assert {"num_images", "fid", "sfid", "inception_score", "precision", "recall", "kid"} <= set(gen)
    assert abs(gen["fid"]) < 1e-6 * np.trace(reference.sigma) and abs(gen["sfid"]) < 1e-6 * np.trace(reference.spatial.sigma)
    assert gen["precision"] == gen["recall"] == 1.0  # the samples are the reference
    assert gen["details"]["fid"]["n"] == 3 and gen["provenance"]["inception_weights_sha256"] == file_sha256(inception_weights)
    assert "FID on 3 images is biased" in result.stderr and "used 3 samples" in result.stderr
    for name in ("FID", "sFID", "IS", "Precision", "Recall", "KID"):
        assert f"\n{name} " in result.stdout


def test_fid_cache_of_a_shard_set_records_the_manifest(tmp_path: Path, make_photos, inception_weights: Path, run_cli) -> None:
    from vq_data import make_source, pack

    make_photos(tmp_path / "imgs", 2, size=(40, 30))
    pack(make_source(str(tmp_path / "imgs"), kind="folder"), tmp_path / "shards", samples_per_shard=2, image_size=24)
    run_cli("fid-cache", tmp_path / "shards", "--out", tmp_path / "ref.npz", "--inception-weights", inception_weights, "--device", "cpu")
    meta = ReferenceStats.load(tmp_path / "ref.npz").meta
    assert meta["manifest_sha256"] == file_sha256(tmp_path / "shards" / "manifest.json")
    assert meta["transform"].startswith("resize shorter side to 24")


def test_missing_inception_weights_is_a_clean_error(tmp_path: Path, photo_folder: Path) -> None:
    result = CliRunner().invoke(
        main, ["fid-cache", str(photo_folder), "--out", str(tmp_path / "r.npz"), "--inception-weights", str(tmp_path / "none.pth")]
    )
    assert result.exit_code == 1
    assert f"{tmp_path / 'none.pth'} (from --inception-weights) does not exist" in result.output
    assert "Traceback" not in result.output
