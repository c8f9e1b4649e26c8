"""LPIPS from local files equals the lpips package loading the same weights its own way."""

from __future__ import annotations

from pathlib import Path

import lpips
import pytest
import torch

from vq_eval import LPIPS_BACKBONE_ENV, WeightsNotFoundError, load_lpips


@pytest.fixture
def random_lpips_files(lpips_files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    backbone, linear = lpips_files
    monkeypatch.setenv("TORCH_HOME", str(backbone.parents[2]))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(LPIPS_BACKBONE_ENV, raising=False)
    return backbone, linear


def test_matches_lpips_package(random_lpips_files, photo_batches) -> None:
    backbone, linear = random_lpips_files
    # the reference: lpips asks torchvision for "pretrained" AlexNet, which finds the cached file
    with pytest.warns(UserWarning):
        reference = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=False, model_path=str(linear), verbose=False)
    ours = load_lpips("alex", linear_weights=linear)  # backbone found in the torch hub cache
    images = torch.cat(photo_batches(4, 4, size=48))
    distorted = (images + 0.3 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    with torch.inference_mode():
        expected = reference(distorted, images).flatten()
        got = ours(distorted, images).flatten()
    assert expected.min() > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert ours(images, images).abs().max() == 0


def test_bundled_linear_heads_are_the_default(random_lpips_files) -> None:
    ours = load_lpips("alex")
    bundled = torch.load(Path(lpips.__file__).parent / "weights" / "v0.1" / "alex.pth", map_location="cpu")
    torch.testing.assert_close(ours.lin0.model[1].weight, bundled["lin0.model.1.weight"])


def test_missing_and_wrong_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, random_lpips_files) -> None:
    with pytest.raises(WeightsNotFoundError, match=r"vgg16-397923af\.pth.*--lpips-backbone"):
        load_lpips("vgg")
    wrong = tmp_path / "wrong.pth"
    torch.save({"classifier.1.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ValueError, match=r"wrong\.pth lack 'features\.0\.weight'"):
        load_lpips("alex", backbone_weights=wrong)
    monkeypatch.setenv(LPIPS_BACKBONE_ENV, str(tmp_path / "absent.pth"))
    with pytest.raises(WeightsNotFoundError, match=r"absent\.pth \(from \$VQ_LPIPS_BACKBONE\)"):
        load_lpips("alex")
