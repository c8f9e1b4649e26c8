"""StyleGAN discriminators, R1 and the non-saturating GAN losses.

References written here from the upstream code (read, not imported):
- LlamaGen ``tokenizer/tokenizer_image/discriminator_stylegan.py``: parameter names/shapes and a
  functional forward over its state dict (kornia ``filter2d`` = normalised kernel, reflected borders).
- the seed's ``vq/algorithms/vqgan/discriminators/stylegan2.py``: its layer list (parameter count)
  and a functional forward (equalised lr, upfirdn2d blur [1, 3, 3, 1], fused bias-LeakyReLU x sqrt 2,
  minibatch std over '(bg b)' groups of 4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vq_tokenizers import TrainJob, build_run
from vq_tokenizers.losses import (
    LlamaGenStyleGANDiscriminator,
    LossConfig,
    NLayerDiscriminator,
    StyleGAN2Discriminator,
    VQGANLoss,
    non_saturating_d_loss,
    non_saturating_g_loss,
    r1_penalty,
)
from vq_tokenizers.presets import get_preset
from vq_tokenizers.training import ImageBatches, Trainer

pytestmark = pytest.mark.usefixtures("single_thread")


# --- LlamaGen ------------------------------------------------------------------------------------
def llamagen_expected_shapes(image_size: int) -> dict[str, tuple[int, ...]]:
    """Discriminator(input_nc=3, image_size=S) state dict, channel_multiplier 1."""
    ch = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = ch[image_size]
    shapes["blocks.0.weight"], shapes["blocks.0.bias"] = (c_in, 3, 3, 3), (c_in,)
    for index, i in enumerate(range(int(math.log2(image_size)), 2, -1), start=2):
        c_out = ch[2 ** (i - 1)]
        p = f"blocks.{index}."
        shapes |= {p + "conv_res.weight": (c_out, c_in, 1, 1), p + "conv_res.bias": (c_out,)}
        shapes |= {p + "net.0.weight": (c_out, c_in, 3, 3), p + "net.0.bias": (c_out,)}
        shapes |= {p + "net.2.weight": (c_out, c_out, 3, 3), p + "net.2.bias": (c_out,)}
        shapes |= {p + "downsample.0.f": (3,), p + "downsample.1.weight": (c_out, c_out, 3, 3), p + "downsample.1.bias": (c_out,)}
        c_in = c_out
    shapes |= {"final_conv.0.weight": (512, c_in, 3, 3), "final_conv.0.bias": (512,)}
    shapes |= {"final_linear.0.weight": (512, 512 * 16), "final_linear.0.bias": (512,)}
    shapes |= {"final_linear.2.weight": (1, 512), "final_linear.2.bias": (1,)}
    return shapes


def llamagen_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    x = lrelu(F.conv2d(x, sd["blocks.0.weight"], sd["blocks.0.bias"], padding=1))
    index = 2
    while f"blocks.{index}.conv_res.weight" in sd:
        p = f"blocks.{index}."
        res = F.conv2d(x, sd[p + "conv_res.weight"], sd[p + "conv_res.bias"], stride=2)
        h = lrelu(F.conv2d(x, sd[p + "net.0.weight"], sd[p + "net.0.bias"], padding=1))
        h = lrelu(F.conv2d(h, sd[p + "net.2.weight"], sd[p + "net.2.bias"], padding=1))
        f = sd[p + "downsample.0.f"]
        k = (f[None, :] * f[:, None]) / (f[None, :] * f[:, None]).sum()
        h = F.conv2d(F.pad(h, (1, 1, 1, 1), mode="reflect"), k.expand(h.shape[1], 1, 3, 3), groups=h.shape[1])
        h = F.conv2d(h, sd[p + "downsample.1.weight"], sd[p + "downsample.1.bias"], stride=2, padding=1)
        x = (h + res) / math.sqrt(2)
        index += 1
    x = lrelu(F.conv2d(x, sd["final_conv.0.weight"], sd["final_conv.0.bias"], padding=1)).flatten(1)
    x = lrelu(F.linear(x, sd["final_linear.0.weight"], sd["final_linear.0.bias"]))
    return F.linear(x, sd["final_linear.2.weight"], sd["final_linear.2.bias"])


def test_llamagen_stylegan_layout_count_and_forward_match_llamagen() -> None:
    torch.manual_seed(0)
    disc = LlamaGenStyleGANDiscriminator(image_size=16)
    expected = llamagen_expected_shapes(16)
    assert {k: tuple(v.shape) for k, v in disc.state_dict().items()} == expected
    n_params = sum(math.prod(s) for k, s in expected.items() if not k.endswith(".f"))  # f is a buffer
    assert sum(p.numel() for p in disc.parameters()) == n_params == 21_253_633
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(disc(x), llamagen_forward(disc.state_dict(), x), rtol=1e-4, atol=1e-5)
    disc.load_state_dict({k: torch.randn_like(v) if not k.endswith(".f") else v for k, v in disc.state_dict().items()})
    with pytest.raises(ValueError, match="built for 16px"):
        disc(torch.randn(2, 3, 32, 32))


# --- the seed ------------------------------------------------------------------------------------
SEED_CH = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}


def seed_param_count(image_size: int) -> int:
    """StyleGAN2Discriminator(image_size): ActivateConv2d = conv w/o bias + FusedBiasLeakyReLU bias."""
    widths = [SEED_CH[2**i] for i in range(int(math.log2(image_size)), 1, -1)]
    total = 3 * widths[0] + widths[0]  # from-rgb 1x1 + its activation bias
    for a, b in zip(widths[:-1], widths[1:]):
        total += a * a * 9 + a + a * b * 9 + b + a * b  # two activated 3x3 convs, 1x1 shortcut without bias
    total += (widths[-1] + 1) * 512 * 9 + 512  # after the std channel
    return total + 512 * 16 * 512 + 512 + 512 + 1  # ActivateLinear, Linear(512, 1)


def seed_forward(disc: StyleGAN2Discriminator, x: torch.Tensor) -> torch.Tensor:
    """The seed's forward written from its ops, reading our weights by position."""
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur_k = (taps[:, None] * taps[None, :]) / 64

    def conv(layer, t, activate):
        w = layer.weight / math.sqrt(math.prod(layer.weight.shape[1:]))
        k = layer.weight.shape[-1]
        if layer.blur is not None:
            p0, p1 = k // 2 + 1, (k + 1) // 2
            t = F.pad(t, (p0, p1, p0, p1))
            t = F.conv2d(t, blur_k.expand(t.shape[1], 1, 4, 4), groups=t.shape[1])
            t = F.conv2d(t, w, stride=2)
        else:
            t = F.conv2d(t, w, padding=k // 2)
        if activate:
            return F.leaky_relu(t + layer.bias[None, :, None, None], 0.2) * math.sqrt(2)
        return t if layer.bias is None else t + layer.bias[None, :, None, None]

    x = conv(disc.from_rgb, x, True)
    for block in disc.blocks:
        x = (conv(block.skip, x, False) + conv(block.conv2, conv(block.conv1, x, True), True)) / math.sqrt(2)
    b, c, h, w = x.shape
    bg = min(b, 4)
    y = x.reshape(bg, b // bg, c, h, w)
    std = torch.sqrt(y.var(0, unbiased=False) + 1e-8).mean((1, 2, 3))
    x = torch.cat([x, std.repeat(bg)[:, None, None, None].expand(b, 1, h, w)], 1)
    x = conv(disc.final_conv, x, True).flatten(1)
    lin1, lin2 = disc.final_linear
    x = F.leaky_relu(x @ (lin1.weight / math.sqrt(lin1.weight.shape[1])).T + lin1.bias, 0.2) * math.sqrt(2)
    return x @ (lin2.weight / math.sqrt(lin2.weight.shape[1])).T + lin2.bias


def test_seed_stylegan2_preset_builds_the_seeds_discriminator() -> None:
    preset = get_preset("vqgan_f16_8192_stylegan2")
    assert (preset.loss.discriminator, preset.loss.disc_image_size, preset.loss.r1_weight) == ("stylegan2", 256, 0.0)
    assert (preset.loss.generator_loss, preset.loss.disc_loss) == ("hinge", "hinge")  # model.py: VQGAN{Generator,Discriminator}Loss
    loss = VQGANLoss(preset.loss.model_copy(update={"perceptual_weight": 0.0}))
    assert isinstance(loss.discriminator, StyleGAN2Discriminator)
    assert sum(p.numel() for p in loss.discriminator.parameters()) == seed_param_count(256)


def test_seed_stylegan2_forward_matches_the_seeds_ops() -> None:
    torch.manual_seed(0)
    disc = StyleGAN2Discriminator(image_size=16, max_channels=16)
    with torch.no_grad():
        for p in disc.parameters():
            if p.dim() == 1:
                p.normal_()  # non-zero biases so they are checked too
        x = torch.randn(8, 3, 16, 16)  # two std groups of 4
        out = disc(x)
        assert out.shape == (8, 1)
        torch.testing.assert_close(out, seed_forward(disc, x), rtol=1e-4, atol=1e-5)
    assert sum(p.numel() for p in StyleGAN2Discriminator(image_size=16).parameters()) == seed_param_count(16)


# --- R1 and the GAN losses -----------------------------------------------------------------------
class _Quadratic(torch.nn.Module):
    """D(x) = sum(w * x^2) per image: dD/dx = 2 w x, so R1 = mean_b sum (2 w x)^2."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(0.5, 1.5, 3 * 4 * 4).view(3, 4, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x.square()).flatten(1).sum(1, keepdim=True)


def test_r1_penalty_matches_its_formula_and_is_differentiable() -> None:
    torch.manual_seed(0)
    disc, x = _Quadratic(), torch.randn(5, 3, 4, 4, dtype=torch.float64)
    disc.double()
    penalty = r1_penalty(disc, x)
    w = disc.w.detach()
    assert penalty.item() == pytest.approx((2 * w * x).square().flatten(1).sum(1).mean().item(), rel=1e-12)
    (grad_w,) = torch.autograd.grad(penalty, disc.w)  # d/dw mean_b sum 4 w^2 x^2 = mean_b 8 w x^2
    torch.testing.assert_close(grad_w, (8 * w * x.square()).mean(0))


def test_r1_runs_the_discriminator_in_eval_mode_and_restores_it() -> None:
    torch.manual_seed(0)
    disc = NLayerDiscriminator(3, 8, 2).train()
    stats = disc.main[3].running_mean.clone()
    x = torch.randn(4, 3, 16, 16)
    penalty = r1_penalty(disc, x)
    assert disc.training and all(m.training for m in disc.modules())
    torch.testing.assert_close(disc.main[3].running_mean, stats)  # no BatchNorm update from the penalty pass
    disc.eval()
    real = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(disc(real).sum(), real)
    assert penalty.item() == pytest.approx(grad.square().sum((1, 2, 3)).mean().item(), rel=1e-5)


def test_non_saturating_losses_match_their_formulas() -> None:
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(4, 1)) * 3, rng.normal(size=(4, 1)) * 3
    sig = lambda t: 1 / (1 + np.exp(-t))  # noqa: E731
    expected_d = 0.5 * (-np.log(sig(real)).mean() - np.log(1 - sig(fake)).mean())
    assert non_saturating_d_loss(torch.tensor(real), torch.tensor(fake)).item() == pytest.approx(expected_d)
    assert non_saturating_g_loss(torch.tensor(fake)).item() == pytest.approx(-np.log(sig(fake)).mean())
    # LlamaGen's non_saturating_gen_loss (BCE arguments swapped) is the hinge loss + log(1 + e), as documented
    t = torch.tensor(fake)
    llamagen = F.binary_cross_entropy_with_logits(torch.ones_like(t), t)
    assert llamagen.item() == pytest.approx(-fake.mean() + math.log(1 + math.e))


# --- training ------------------------------------------------------------------------------------
@pytest.mark.parametrize("discriminator", ["stylegan2", "stylegan_llamagen"])
def test_two_training_steps_with_a_stylegan_discriminator_r1_and_non_saturating_losses(
    teacher_photos, tmp_path, discriminator: str
) -> None:
    loss = {
        "discriminator": discriminator, "disc_image_size": 32, "disc_max_channels": 16,
        "generator_loss": "non_saturating", "disc_loss": "non_saturating", "r1_weight": 2.0,
    }
    job = TrainJob(
        family="vqgan", preset="tiny", data="unused", out="unused", loss=loss,
        train={"batch_size": 4, "steps": 2, "disc_start": 0, "log_every": 1, "ckpt_every": 2, "sample_every": 100},
    )
    model, loss_config, config = build_run(job)
    data = ImageBatches(teacher_photos, image_size=32, batch_size=config.micro_batch_size(), seed=config.seed)
    trainer = Trainer(model, data, config, tmp_path, loss=loss_config)
    before = {k: v.clone() for k, v in trainer.discriminator.state_dict().items()}
    metrics = trainer.train()
    assert metrics["step"] == 2
    assert all(math.isfinite(metrics[k]) for k in ("d", "r1", "g")) and metrics["r1"] > 0
    changed = [k for k, v in trainer.discriminator.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and all(k.endswith(("weight", "bias")) for k in changed)
