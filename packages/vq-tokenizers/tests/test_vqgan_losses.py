"""VQGAN objective: adaptive weight vs. a manual autograd computation, hinge losses vs. their formulas,
the PatchGAN layout, and LPIPS loaded from local weight files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from vq_tokenizers.losses import (
    LPIPS,
    LossConfig,
    NLayerDiscriminator,
    VQGANLoss,
    adaptive_generator_weight,
    hinge_d_loss,
    hinge_g_loss,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_adaptive_weight_matches_manual_backward_passes():
    torch.manual_seed(0)
    last = torch.nn.Conv2d(4, 3, 3, padding=1)
    x = torch.randn(2, 4, 8, 8)
    target = torch.randn(2, 3, 8, 8)
    out = last(x)
    rec = (out - target).abs().mean()
    g = -(out * torch.linspace(-1, 1, 8)).mean() * 3.0

    weight = adaptive_generator_weight(rec, g, last.weight, gain=0.75)

    grads = []
    for loss in (rec, g):
        last.weight.grad = None
        loss.backward(retain_graph=True)
        grads.append(last.weight.grad.clone())
    expected = 0.75 * min(max(grads[0].norm().item() / (grads[1].norm().item() + 1e-4), 0.0), 1e4)
    assert weight.item() == pytest.approx(expected, rel=1e-6)
    assert not weight.requires_grad


def test_adaptive_weight_is_clamped_when_the_gan_gradient_vanishes():
    w = torch.ones(3, requires_grad=True)
    rec = (w * 1e3).sum()
    g = (w * 0.0).sum()
    assert adaptive_generator_weight(rec, g, w, gain=1.0).item() == 1e4


def test_hinge_losses_match_their_formulas():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(4, 1, 6, 6)), rng.normal(size=(4, 1, 6, 6))
    expected_d = 0.5 * (np.maximum(0, 1 - real).mean() + np.maximum(0, 1 + fake).mean())
    assert hinge_d_loss(torch.tensor(real), torch.tensor(fake)).item() == pytest.approx(expected_d)
    assert hinge_g_loss(torch.tensor(fake)).item() == pytest.approx(-fake.mean())


@pytest.mark.parametrize(("layers", "convs", "side"), [(3, 5, 30), (2, 4, 62)])
def test_patchgan_depth_and_receptive_layout(layers, convs, side):
    """pix2pix PatchGAN on 256x256: depth 3 gives the classic 30x30 logit map, depth 2 a 62x62 one."""
    with torch.device("meta"):
        disc = NLayerDiscriminator(3, 64, layers)
        logits = disc(torch.empty(1, 3, 256, 256))
    assert sum(isinstance(m, torch.nn.Conv2d) for m in disc.modules()) == convs
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in disc.modules()) == layers
    assert logits.shape == (1, 1, side, side)
    assert [m.out_channels for m in disc.main if isinstance(m, torch.nn.Conv2d)][-2] == 64 * min(2**layers, 8)


def test_generator_loss_combines_terms_as_published():
    torch.manual_seed(0)
    loss = VQGANLoss(LossConfig(l1_weight=1.0, l2_weight=0.5, perceptual_weight=0, gan_weight=0.5, adaptive_gain=None))
    last = torch.nn.Conv2d(3, 3, 1)
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    recon = last(torch.rand(2, 3, 32, 32))
    q = torch.tensor(0.3)
    total, logs = loss.generator(images, recon, q, last.weight, with_gan=True)
    g = -loss.discriminator(recon).mean()
    expected = F.l1_loss(recon, images) + 0.5 * F.mse_loss(recon, images) + 0.3 + 0.5 * g
    torch.testing.assert_close(total, expected)
    assert set(logs) >= {"l1", "mse", "rec", "quant", "g", "adaptive_weight", "loss"}
    no_gan, logs = loss.generator(images, recon, q, last.weight, with_gan=False)
    assert "g" not in logs and no_gan.item() == pytest.approx((expected - 0.5 * g).item(), rel=1e-6)
    total.backward()
    assert all(p.grad is None for p in loss.discriminator.parameters())  # D gets no generator gradient


def test_discriminator_loss_sees_real_and_fake_batches_separately():
    torch.manual_seed(0)
    loss = VQGANLoss(LossConfig(perceptual_weight=0, gan_weight=0.5))
    images, recon = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    d, _ = loss.discriminator_loss(images, recon)
    disc = loss.discriminator
    expected = 0.5 * hinge_d_loss(disc(images), disc(recon))
    torch.testing.assert_close(d, expected)


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory):
    """A randomly initialised torchvision VGG16 feature stack saved the way torchvision caches weights."""
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])  # vgg16().features, no classifier
    path = tmp_path_factory.mktemp("weights") / "vgg16-397923af.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path, features


def _reference_lpips(features, x, y):
    """LPIPS by hand: scaled input, VGG relu1_2..relu5_3, unit-normalised channels, squared difference,
    the package's calibrated 1x1 heads, spatial mean, sum."""
    import lpips

    heads = torch.load(f"{lpips.__path__[0]}/weights/v0.1/vgg.pth", map_location="cpu")
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)
    taps = [3, 8, 15, 22, 29]

    def feats(img):
        h, out = (img - shift) / scale, []
        for i, layer in enumerate(features):
            h = layer(h)
            if i in taps:
                out.append(h / (h.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    total = 0
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        total = total + F.conv2d((a - b) ** 2, heads[f"lin{k}.model.1.weight"]).mean((2, 3))
    return total.flatten()


def test_lpips_loads_local_vgg_weights_and_matches_a_manual_computation(vgg_file):
    path, features = vgg_file
    metric = LPIPS(path)
    torch.manual_seed(1)
    x, y = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad(), warnings.catch_warnings():
        torch.testing.assert_close(metric(x, y), _reference_lpips(features.eval(), x, y), rtol=1e-4, atol=1e-6)
        assert torch.equal(metric(x, x), torch.zeros(2))
    assert not any(p.requires_grad for p in metric.parameters())
    metric.train()
    assert not metric.net.training  # the heads' dropout never fires


def test_lpips_missing_file_names_it_and_the_way_out(tmp_path):
    missing = tmp_path / "nowhere" / "vgg16-397923af.pth"
    with pytest.raises(FileNotFoundError, match=r"nowhere/vgg16-397923af.pth.*perceptual_weight=0"):
        LPIPS(missing)
    with pytest.raises(FileNotFoundError, match="perceptual_weight=0"):
        VQGANLoss(LossConfig(lpips_vgg_weights=str(missing)))
    assert VQGANLoss(LossConfig(perceptual_weight=0, lpips_vgg_weights=str(missing))).lpips is None


def test_lpips_refuses_a_file_that_is_not_vgg16(tmp_path):
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a torchvision vgg16 state dict"):
        LPIPS(tmp_path / "other.pth")
