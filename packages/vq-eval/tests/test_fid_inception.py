"""The FID Inception equals pytorch-fid's network, preprocessing and file pipeline; weight errors are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from pytorch_fid import fid_score
from pytorch_fid import inception as pfid_inception
from torchvision.transforms import InterpolationMode

from vq_eval import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_NAME,
    FIDInceptionV3,
    WeightsNotFoundError,
    list_images,
    load_fid_inception,
    open_images,
)


@pytest.fixture(scope="module")
def pytorch_fid_model(inception_weights: Path, monkeypatch_module: pytest.MonkeyPatch) -> pfid_inception.InceptionV3:
    """pytorch-fid's own InceptionV3, its 'download' answered from the same random weight file."""
    monkeypatch_module.setattr(pfid_inception, "load_state_dict_from_url", lambda *a, **k: torch.load(inception_weights))
    model = pfid_inception.InceptionV3([pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    # the FID variant (fid_inception_v3: FIDInceptionA/C/E_1/E_2 blocks), not torchvision's Inception-v3
    kinds = {type(m) for m in model.modules()}
    assert {pfid_inception.FIDInceptionA, pfid_inception.FIDInceptionC, pfid_inception.FIDInceptionE_1, pfid_inception.FIDInceptionE_2} <= kinds
    return model


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_network_equals_pytorch_fid(inception: FIDInceptionV3, pytorch_fid_model) -> None:
    """Same weights, same input tensor: same 2048-d features to 1e-5."""
    x01 = torch.rand(2, 3, 299, 299, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        theirs = pytorch_fid_model(x01)[0].flatten(1)
        ours = inception(x01 * 2 - 1)
    assert ours.pool.shape == (2, 2048) and ours.logits.shape == (2, 1008)
    assert theirs.std() > 0.1  # random weights still give spread-out features
    torch.testing.assert_close(ours.pool, theirs, atol=1e-5, rtol=0)


def test_channels_last_variant_agrees(inception_weights: Path, inception: FIDInceptionV3) -> None:
    fast = load_fid_inception(inception_weights, channels_last=True)
    x = torch.rand(2, 3, 80, 80, generator=torch.Generator().manual_seed(2)) * 2 - 1
    with torch.inference_mode():
        torch.testing.assert_close(fast.pool_features(x), inception.pool_features(x), rtol=1e-5, atol=1e-5)


def test_features_equal_pytorch_fid_on_image_files(photo_folder: Path, inception: FIDInceptionV3, pytorch_fid_model) -> None:
    """Same PNGs through pytorch-fid's loader+network and ours (64x48 -> bilinear 299): same features.

    pytorch-fid reads pixels as ``u8 / 255``, we as ``u8 / 127.5 - 1``; the two differ by float
    rounding, which the ~100 layers carry to ~1e-6 relative, hence the relative tolerance.
    """
    files = list_images(photo_folder)
    theirs = fid_score.get_activations([str(f) for f in files], pytorch_fid_model, batch_size=2, dims=2048, device="cpu", num_workers=0)
    with torch.inference_mode():
        ours = torch.cat([inception.pool_features(batch) for batch in open_images(photo_folder, batch_size=2)]).numpy()
    assert ours.shape == theirs.shape == (3, 2048)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


def test_logits_are_the_fid_classifier(inception: FIDInceptionV3, inception_weights: Path) -> None:
    state = torch.load(inception_weights)
    pool = torch.randn(3, 2048, dtype=torch.float32)
    with torch.inference_mode():
        unbiased = inception.unbiased_logits(pool)
        biased = inception.fc(pool)
    torch.testing.assert_close(unbiased, pool @ state["fc.weight"].T)
    torch.testing.assert_close(biased, unbiased + state["fc.bias"])
    assert biased.shape == (3, 1008)


def test_preprocess_matches_pytorch_fid_and_torchvision_resize(inception: FIDInceptionV3) -> None:
    """[-1, 1] input -> bilinear 299 (no antialias) in [-1, 1], as pytorch-fid and torchvision's resize do on [0, 1]."""
    x01 = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(0))
    ours = inception.preprocess(x01 * 2 - 1)
    pytorch_fid_way = 2 * F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torchvision_way = 2 * TF.resize(x01, [299, 299], interpolation=InterpolationMode.BILINEAR, antialias=False) - 1
    torch.testing.assert_close(ours, pytorch_fid_way, atol=1e-6, rtol=0)
    torch.testing.assert_close(ours, torchvision_way, atol=1e-6, rtol=0)
    same = torch.rand(1, 3, 299, 299) * 2 - 1
    torch.testing.assert_close(inception.preprocess(same), same, atol=1e-6, rtol=0)


def test_weights_without_batch_counters_load(tmp_path: Path, inception_weights: Path) -> None:
    """The released file predates BatchNorm's ``num_batches_tracked``; such a state dict must load."""
    state = {k: v for k, v in torch.load(inception_weights).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "old_layout.pth"
    torch.save(state, path)
    model = load_fid_inception(path)
    torch.testing.assert_close(model.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    assert model.weights_path == str(path) and len(model.weights_sha256) == 64


def test_missing_weights_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsNotFoundError, match="nope.pth"):
        load_fid_inception(missing)
    monkeypatch.setenv(INCEPTION_WEIGHTS_ENV, str(tmp_path / "from_env.pth"))
    with pytest.raises(WeightsNotFoundError, match=r"from_env\.pth.*\$VQ_INCEPTION_WEIGHTS"):
        load_fid_inception()
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(WeightsNotFoundError, match=rf"{tmp_path}/\.cache/vq/{INCEPTION_WEIGHTS_NAME}.*--inception-weights"):
        load_fid_inception()


def test_default_cache_path_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inception_weights: Path) -> None:
    monkeypatch.delenv(INCEPTION_WEIGHTS_ENV, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cached = tmp_path / ".cache" / "vq" / INCEPTION_WEIGHTS_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(inception_weights.read_bytes())
    assert load_fid_inception().weights_path == str(cached)


def test_wrong_weights_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not_inception.pth"
    torch.save({"conv.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match=r"not_inception\.pth do not fit the pytorch-fid layout"):
        load_fid_inception(path)
