"""The ``digits`` source: scikit-learn's real 8x8 digits, a fixed stratified split, packed and enlarged."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from sklearn.datasets import load_digits

from vq_data import DIGIT_CLASSES, DigitsSource, SourceError, digits_split, iter_samples, make_source, pack


def test_split_is_fixed_stratified_disjoint_and_covers_every_image():
    labels = load_digits().target
    split = digits_split(labels)
    train, heldout = split["train"], split["heldout"]
    assert len(train) == 1258 and len(heldout) == 539
    assert np.intersect1d(train, heldout).size == 0
    np.testing.assert_array_equal(np.union1d(train, heldout), np.arange(1797))
    for c in range(10):  # every class keeps its 30 % share (rounding: within one image)
        assert abs((labels[heldout] == c).sum() - 0.3 * (labels == c).sum()) <= 0.5
    np.testing.assert_array_equal(digits_split(labels)["heldout"], heldout)  # same split every run
    assert not np.array_equal(digits_split(labels, seed=1)["heldout"], heldout)


def test_records_are_sklearns_pixels_and_labels():
    bunch = load_digits()
    source = DigitsSource(split="heldout")
    records = source.records()
    assert source.class_names == list(DIGIT_CLASSES) == [str(d) for d in range(10)]
    assert len(records) == 539 and len({r.key for r in records}) == 539
    for record in records[:25]:
        index = record.meta["index"]
        assert record.label == bunch.target[index]
        pixels = np.asarray(record.open())
        assert pixels.shape == (8, 8, 3)
        np.testing.assert_array_equal(pixels[..., 0], np.rint(bunch.images[index] * 255 / 16))


def test_pack_enlarges_with_bicubic_and_arrays_match_the_shards(tmp_path):
    source = DigitsSource(split="heldout")
    manifest = pack(source, tmp_path / "digits", samples_per_shard=256, image_size=16)
    assert manifest.num_samples == 539 and manifest.dataset.num_classes == 10 and manifest.dataset.split == "heldout"
    samples = list(iter_samples(tmp_path / "digits"))
    stored = np.stack([np.asarray(Image.open(io.BytesIO(s["png"]))) for s in samples])
    arrays, labels = source.arrays(16)
    np.testing.assert_array_equal(stored, arrays)
    np.testing.assert_array_equal([s["cls"] for s in samples], labels)
    # independent reference: torch bicubic of the 8x8 levels (its kernel a=-0.75 differs from PIL's -0.5: compared loosely)
    levels = torch.from_numpy(np.rint(load_digits().images[source.indices()] * 255 / 16)).float()[:, None]
    reference = F.interpolate(levels, size=16, mode="bicubic", align_corners=False).clamp(0, 255)[:, 0].numpy()
    assert np.abs(stored[..., 0].astype(float) - reference).mean() < 6.0


def test_make_source_and_errors():
    assert isinstance(make_source("digits", split="train"), DigitsSource)
    assert len(make_source(None, kind="digits", split="train")) == 1258
    assert len(DigitsSource(split=None)) == 1797
    with pytest.raises(SourceError, match="digits split 'val'"):
        DigitsSource(split="val")
