"""The pixel judge on real digits: its accuracy, chance on shuffled labels, and its generation scores
against brute-force references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vq_data import DigitsSource
from vq_eval import PixelJudge, frechet_distance, grey_pixels, precision_recall


@pytest.fixture(scope="module")
def digits():
    train_images, train_labels = DigitsSource(split="train").arrays(16)
    heldout_images, heldout_labels = DigitsSource(split="heldout").arrays(16)
    judge = PixelJudge().fit(heldout_images, heldout_labels)
    return judge, train_images, train_labels


def test_judge_trained_on_heldout_digits_judges_unseen_real_digits(digits):
    judge, images, labels = digits
    assert judge.accuracy(images, labels) >= 0.965  # measured 0.975
    # the same judgement whatever form the images come in: uint8 RGB, or tensors in [-1, 1] at 32 px
    tensors = torch.from_numpy(images[:200]).permute(0, 3, 1, 2).float().div(127.5).sub(1)
    np.testing.assert_array_equal(judge.predict(tensors), judge.predict(images[:200]))
    big = torch.nn.functional.interpolate(tensors, size=32, mode="bilinear", antialias=True)
    assert (judge.predict(big) == labels[:200]).mean() >= 0.95


def test_shuffled_labels_give_chance_accuracy(digits):
    judge, images, labels = digits
    shuffled = np.random.default_rng(0).permutation(labels)
    assert 0.05 <= judge.accuracy(images, shuffled) <= 0.16  # chance: 0.10
    heldout_images, heldout_labels = DigitsSource(split="heldout").arrays(16)
    blind = PixelJudge().fit(heldout_images, np.random.default_rng(1).permutation(heldout_labels))
    assert blind.accuracy(images, labels) <= 0.18  # a judge fitted on shuffled labels learned no classes


def test_generation_scores_tell_real_from_noise(digits):
    judge, images, labels = digits
    first, second = images[::2], images[1::2]
    real = judge.score_generation(first, labels[::2], second)
    assert real.class_accuracy >= 0.97 and real.precision >= 0.85 and real.recall >= 0.85
    noise = np.random.default_rng(0).integers(0, 256, size=first.shape, dtype=np.uint8)
    fake = judge.score_generation(noise, labels[::2], second)
    assert fake.frechet > 10 * real.frechet and fake.precision <= 0.05 and fake.class_accuracy <= 0.3
    # the Fréchet distance is that of the judge's PCA features (checked against an independent fit)
    a, b = judge.features(first), judge.features(second)
    assert real.frechet == pytest.approx(frechet_distance(a.mean(0), np.cov(a.T), b.mean(0), np.cov(b.T)))
    pca = judge.model.named_steps["pca"]
    np.testing.assert_allclose(a, (grey_pixels(first) - pca.mean_) @ pca.components_.T, atol=1e-9)


def test_the_judges_float64_precision_recall_matches_brute_force():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 3)), rng.normal(0.7, 1.3, size=(30, 3))
    k = 3

    def radius(points, i):
        return sorted(float(np.linalg.norm(points[i] - p)) for j, p in enumerate(points) if j != i)[k - 1]

    real_r = [radius(real, i) for i in range(len(real))]
    fake_r = [radius(fake, i) for i in range(len(fake))]
    precision = np.mean([any(np.linalg.norm(f - r) <= real_r[j] for j, r in enumerate(real)) for f in fake])
    recall = np.mean([any(np.linalg.norm(r - f) <= fake_r[j] for j, f in enumerate(fake)) for r in real])
    assert precision_recall(real, fake, k=k, dtype=torch.float64) == pytest.approx((precision, recall))
    assert 0 < precision < 1 and 0 < recall < 1
