"""ADM's generation metrics: sFID's layer, precision/recall against a brute-force k-NN manifold, IS splits,
ADM .npz batches and reference batches, and the refusals that keep numbers comparable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from vq_eval import ReferenceError, ReferenceStats, SourceError, frechet_distance, open_images
from vq_eval.generation import evaluate_samples, format_generation_table, load_reference, reference_from_images, reference_resize
from vq_eval.inception_score import inception_score_of_logits
from vq_eval.kid import kernel_inception_distance, polynomial_mmd2
from vq_eval.precision_recall import precision_recall
from vq_eval.sample_batch import SampleBatchError, open_sample_batch, write_sample_batch


def test_sfid_features_are_the_mixed_6d_1x1_branch_first_7_channels_in_tf_order(inception) -> None:
    """TF's ``mixed_6/conv`` is the ReLU output of the 1x1 branch of the third 17x17 block (``Mixed_6d``)."""
    seen: list[torch.Tensor] = []
    hook = inception.Mixed_6d.branch1x1.register_forward_hook(lambda module, args, out: seen.append(out.clone()))
    images = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    try:
        with torch.inference_mode():
            features = inception.features(images)
            pool = inception.pool_features(images)
    finally:
        hook.remove()
    layer = seen[0]
    assert layer.shape == (2, 192, 17, 17) and (layer >= 0).all() and layer[:, :7].std() > 0
    expected = layer[:, :7].permute(0, 2, 3, 1).reshape(2, 17 * 17 * 7)  # NHWC, as ADM's reshape of the TF tensor
    assert torch.equal(features.spatial, expected)
    assert torch.equal(features.pool, pool)


def _brute_force_precision_recall(real: np.ndarray, fake: np.ndarray, k: int) -> tuple[float, float]:
    """Kynkaanniemi et al.'s definition, literally: balls to the k-th nearest *other* point, boundary inside."""

    def radii(points: np.ndarray) -> np.ndarray:
        out = []
        for i, p in enumerate(points):
            others = np.delete(points, i, axis=0)
            out.append(np.sort(np.linalg.norm(others - p, axis=1))[k - 1])
        return np.array(out)

    def share_inside(points: np.ndarray, centres: np.ndarray, r: np.ndarray) -> float:
        return float(np.mean([any(np.linalg.norm(c - p) <= rc for c, rc in zip(centres, r)) for p in points]))

    return share_inside(fake, real, radii(real)), share_inside(real, fake, radii(fake))


@pytest.mark.parametrize("k", [1, 3, 5])
def test_precision_recall_equal_a_brute_force_k_nn_manifold(k: int) -> None:
    rng = np.random.default_rng(k)
    real = rng.normal(size=(60, 8))
    fake = rng.normal(loc=0.8, scale=0.6, size=(45, 8))  # shifted and narrower: neither 0 nor 1
    expected = _brute_force_precision_recall(real, fake, k)
    got = precision_recall(real, fake, k, block=16)  # blocks smaller than the sets: the chunked path
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1
    assert got == pytest.approx(expected, abs=1e-12)


def test_precision_recall_of_a_set_against_itself_and_against_far_points() -> None:
    points = np.random.default_rng(0).normal(size=(20, 4))
    assert precision_recall(points, points, 3) == (1.0, 1.0)
    assert precision_recall(points, points + 100.0, 3) == (0.0, 0.0)


def test_inception_score_uses_adm_consecutive_splits() -> None:
    logits = torch.randn(12, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3

    def direct(chunk: torch.Tensor) -> float:  # exp(E_x KL(p(y|x) || p(y))) straight from the definition
        p = chunk.softmax(1)
        marginal = p.mean(0, keepdim=True)
        return float(torch.exp((p * (p.log() - marginal.log())).sum(1).mean()))

    mean, std, splits = inception_score_of_logits(logits, split_size=5)  # chunks of 5, 5, 2
    scores = [direct(logits[:5]), direct(logits[5:10]), direct(logits[10:])]
    assert splits == 3 and mean == pytest.approx(np.mean(scores), rel=1e-12) and std == pytest.approx(np.std(scores), rel=1e-12)
    assert inception_score_of_logits(logits)[2] == 1  # fewer than 5000: one split


def test_kid_is_the_unbiased_polynomial_mmd() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6, 3)), rng.normal(loc=0.5, size=(6, 3))

    def k(a: np.ndarray, b: np.ndarray) -> float:
        return (a @ b / 3 + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    assert polynomial_mmd2(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    mean, std, size = kernel_inception_distance(x, y, subsets=3, subset_size=1000)
    assert size == 6 and mean == pytest.approx(polynomial_mmd2(x, y), rel=1e-12) and std == pytest.approx(0, abs=1e-12)


def test_adm_sample_batch_round_trips_and_streams(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, size=(5, 6, 4, 3), dtype=np.uint8)
    path = write_sample_batch(tmp_path / "samples.npz", images, labels=np.array([0, 1, 2, 1, 0]))
    with np.load(path) as data:  # exactly what ADM's evaluator and np.savez(images, labels) give
        assert sorted(data.keys()) == ["arr_0", "arr_1"] and np.array_equal(data["arr_0"], images)
    batch = open_sample_batch(path)
    assert (batch.num_images, batch.height, batch.width) == (5, 6, 4) and list(batch.labels()) == [0, 1, 2, 1, 0]
    assert np.array_equal(np.concatenate(list(batch.iter_rows(1, 3, batch_size=2))), images[1:4])
    tensors = torch.cat(list(open_images(path, batch_size=2)))
    assert torch.equal(tensors, torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1)
    compressed = tmp_path / "c.npz"
    np.savez_compressed(compressed, images)  # streamed from a deflated member as well
    assert np.array_equal(np.concatenate(list(open_sample_batch(compressed).iter_rows(batch_size=3))), images)


def test_malformed_npz_batches_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "float.npz", np.zeros((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(SampleBatchError, match=r"float\.npz: arr_0 is float32 \(2, 4, 4, 3\); ADM batches hold uint8"):
        open_sample_batch(tmp_path / "float.npz")
    np.savez(tmp_path / "stats.npz", mu=np.zeros(3))
    with pytest.raises(SourceError, match=r"stats\.npz has no arr_0 images"):
        open_images(tmp_path / "stats.npz")
    with pytest.raises(SampleBatchError, match="uint8"):
        write_sample_batch(tmp_path / "x.npz", np.zeros((1, 4, 4), dtype=np.uint8))


def _adm_reference_batch(path: Path, images: np.ndarray, stats: ReferenceStats | None) -> Path:
    """A reference batch in ADM's layout: arr_0 images and, optionally, stored mu/sigma/mu_s/sigma_s (no meta)."""
    arrays = {"arr_0": images}
    if stats is not None:
        arrays.update(mu=stats.mu, sigma=stats.sigma, mu_s=stats.mu_s, sigma_s=stats.sigma_s)
    np.savez(path, **arrays)
    return path


def test_adm_reference_batch_stored_statistics_are_used_for_fid(tmp_path: Path, cheap_inception) -> None:
    rng = np.random.default_rng(0)
    ref_images = rng.integers(0, 256, size=(8, 16, 16, 3), dtype=np.uint8)
    samples = write_sample_batch(tmp_path / "samples.npz", rng.integers(0, 256, size=(6, 16, 16, 3), dtype=np.uint8))
    cheap_inception.resize = "tf1"  # ADM's stored statistics come from the TF graph's resize
    try:
        computed = reference_from_images(cheap_inception, open_images(_adm_reference_batch(tmp_path / "plain.npz", ref_images, None)))
        shifted = ReferenceStats(mu=computed.mu + 0.5, sigma=computed.sigma, n=8, mu_s=computed.mu_s + 0.25, sigma_s=computed.sigma_s)
        path = _adm_reference_batch(tmp_path / "VIRTUAL_test.npz", ref_images, shifted)
        assert reference_resize(path) == "tf1"
        reference = load_reference(path, cheap_inception)
        assert reference.meta["source_kind"] == "adm-batch" and reference.meta["resolution"] == "16x16" and reference.n == 8
        np.testing.assert_array_equal(reference.mu, shifted.mu)  # stored, not recomputed
        np.testing.assert_array_equal(reference.features, computed.features)  # P/R/KID from the images
        result = evaluate_samples(cheap_inception, open_images(samples), reference=reference, kid_subsets=5)
        plain = evaluate_samples(cheap_inception, open_images(samples), reference=computed, kid_subsets=5)
        generated = reference_from_images(cheap_inception, open_images(samples))
    finally:
        cheap_inception.resize = "pytorch-fid"
    assert result.metrics["fid"] == pytest.approx(frechet_distance(generated.mu, generated.sigma, shifted.mu, shifted.sigma), rel=1e-9)
    assert result.metrics["sfid"] == pytest.approx(
        frechet_distance(generated.mu_s, generated.sigma_s, shifted.mu_s, shifted.sigma_s), rel=1e-9
    )
    assert result.metrics["fid"] > plain.metrics["fid"] + 1
    for name in ("precision", "recall", "kid", "inception_score"):
        assert result.metrics[name] == plain.metrics[name]
    assert result.details["fid"]["statistics"] == "stored in the file (ADM)"
    assert any("FID on 6 images is biased" in w and "used 6 samples" in w for w in result.warnings)
    table = format_generation_table(result)
    assert "VIRTUAL_test.npz" in table and "preprocessing: cheap test network" in table


def test_a_reference_of_another_resolution_or_resize_is_refused(tmp_path: Path, cheap_inception, make_photos) -> None:
    make_photos(tmp_path / "ref", 4, size=(32, 32))
    make_photos(tmp_path / "big", 4, size=(48, 48))
    reference = reference_from_images(cheap_inception, open_images(tmp_path / "ref"))
    assert reference.meta["resolution"] == "32x32" and reference.meta["resize"] == "pytorch-fid"
    with pytest.raises(ReferenceError, match=r"resolution '48x48' differs from the reference's '32x32'.*--image-size"):
        evaluate_samples(cheap_inception, open_images(tmp_path / "big"), reference=reference)
    evaluate_samples(cheap_inception, open_images(tmp_path / "big", image_size=32), reference=reference, kid_subsets=2)
    tf1 = ReferenceStats(mu=reference.mu, sigma=reference.sigma, n=4, meta={**reference.meta, "resize": "tf1"})
    with pytest.raises(ReferenceError, match=r"'pytorch-fid' network resize but the reference .* 'tf1'; pass --resize tf1"):
        evaluate_samples(cheap_inception, open_images(tmp_path / "ref"), reference=tf1)


def test_cache_keeps_spatial_statistics_and_features(tmp_path: Path, cheap_inception, make_photos) -> None:
    make_photos(tmp_path / "ref", 5, size=(32, 32))
    reference = reference_from_images(cheap_inception, open_images(tmp_path / "ref"))
    loaded = ReferenceStats.load(reference.save(tmp_path / "ref.npz"))
    np.testing.assert_array_equal(loaded.mu_s, reference.mu_s)
    np.testing.assert_array_equal(loaded.features, reference.features)
    assert loaded.features.shape == (5, 64) and loaded.resize == "pytorch-fid"
    stats_only = ReferenceStats(mu=loaded.mu, sigma=loaded.sigma, n=5, meta=loaded.meta)
    result = evaluate_samples(cheap_inception, open_images(tmp_path / "ref"), reference=stats_only)
    assert set(result.skipped) == {"sfid", "precision", "recall", "kid"} and "fid" in result.metrics
