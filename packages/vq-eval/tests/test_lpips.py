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


def _lpips_by_hand(features: torch.nn.Sequential, heads: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS v0.1 from its definition (Zhang et al. 2018), on torchvision's VGG-16 trunk.

    Inputs shifted/scaled to ImageNet statistics, features at relu1_2, relu2_2, relu3_3, relu4_3 and
    relu5_3 unit-normalised over channels, squared differences weighted per channel by the heads,
    averaged over space, summed over layers.
    """
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    ends = [4, 9, 16, 23, 30]  # after each of the five ReLUs above
    total = torch.zeros(x.shape[0])
    fx, fy = (x - shift) / scale, (y - shift) / scale
    start = 0
    for layer, end in enumerate(ends):
        fx, fy = features[start:end](fx), features[start:end](fy)
        start = end
        nx = fx / (fx.square().sum(1, keepdim=True).sqrt() + 1e-10)
        ny = fy / (fy.square().sum(1, keepdim=True).sqrt() + 1e-10)
        weighted = ((nx - ny).square() * heads[f"lin{layer}.model.1.weight"].view(1, -1, 1, 1)).sum(1)
        total += weighted.mean((1, 2))
    return total


def test_vgg_backbone_equals_lpips_by_hand_on_the_same_random_weights(tmp_path: Path) -> None:
    """The seed reports VGG LPIPS: the VGG trunk read from torchvision's file layout gives the textbook value."""
    import torchvision

    generator = torch.Generator().manual_seed(0)
    vgg = torchvision.models.vgg16(weights=None).features.eval()
    with torch.no_grad():
        for module in vgg:
            if isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2 / module.weight[0].numel()) ** 0.5)
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.01)
    backbone = tmp_path / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in vgg.state_dict().items()}, backbone)  # torchvision's key names
    heads = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=generator) for i, c in enumerate([64, 128, 256, 512, 512])}
    linear = tmp_path / "vgg.pth"
    torch.save(heads, linear)
    model = load_lpips("vgg", backbone_weights=backbone, linear_weights=linear)
    assert model.pnet_type == "vgg" and len(model.backbone_sha256) == 64
    x = torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1
    y = (x + 0.2 * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    with torch.inference_mode():
        got = model(x, y).flatten()
        expected = _lpips_by_hand(vgg, heads, x, y)
    assert expected.min() > 0
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
