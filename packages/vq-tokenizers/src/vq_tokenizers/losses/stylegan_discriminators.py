"""The two StyleGAN-style image discriminators VQGAN tokenizers are trained with, one logit per image.

``StyleGAN2Discriminator`` is the seed's (magic-research/vector_quantization
``vq/algorithms/vqgan/discriminators/stylegan2.py``, config ``vqgan/8192_stylegan2_imagenet_ddp.py``):
the StyleGAN2 residual discriminator with equalised learning rate (weights drawn from N(0, 1) and
scaled by 1/sqrt(fan_in) at every forward), biased LeakyReLU(0.2) x sqrt(2), [1, 3, 3, 1] blur before
each stride-2 conv, and the minibatch standard-deviation feature (groups of 4).

``LlamaGenStyleGANDiscriminator`` is LlamaGen's ``--disc-type stylegan``
(``tokenizer/tokenizer_image/discriminator_stylegan.py``): plain convolutions, a [1, 2, 1] blur with
reflected borders, no minibatch std.  Its parameter names (``blocks.*``, ``final_conv``,
``final_linear``) are LlamaGen's, so a LlamaGen discriminator state dict loads unchanged.

Both end in a linear layer over a 4 x 4 map, so they are built for one image size; ``max_channels``
(512 in both upstreams) scales the channel table down for small experiments and tests.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

LEAKY_SLOPE = 0.2
# channels per feature-map size, at max_channels = 512
SEED_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256, 256: 128, 512: 64, 1024: 32}
LLAMAGEN_CHANNELS = {4: 512, 8: 512, 16: 512, 32: 512, 64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}


def _channel_table(table: dict[int, int], image_size: int, max_channels: int) -> dict[int, int]:
    if image_size not in table:
        raise ValueError(f"StyleGAN discriminators take image sizes {sorted(table)[1:]}, got {image_size}")
    return {size: max(1, width * max_channels // 512) for size, width in table.items()}


def _check_input(images: torch.Tensor, image_size: int) -> None:
    if images.shape[-2:] != (image_size, image_size):
        raise ValueError(
            f"the StyleGAN discriminator was built for {image_size}px images (loss.disc_image_size) but got "
            f"{tuple(images.shape[-2:])}; set disc_image_size to the training crop size"
        )


# --- the seed's StyleGAN2 discriminator -----------------------------------------------------------
class _Blur(nn.Module):
    """[1, 3, 3, 1] x [1, 3, 3, 1] / 64 low-pass filter with zero padding, per channel (upfirdn2d, up = down = 1)."""

    def __init__(self, pad: tuple[int, int]) -> None:
        super().__init__()
        taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
        self.register_buffer("kernel", torch.outer(taps, taps) / taps.sum() ** 2, persistent=False)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (self.pad[0], self.pad[1], self.pad[0], self.pad[1]))
        channels = x.shape[1]
        weight = self.kernel.to(x.dtype).expand(channels, 1, 4, 4)
        return F.conv2d(x, weight, groups=channels)


class EqualConv2d(nn.Module):
    """Conv with equalised learning rate; ``downsample`` blurs and then strides by 2 without padding.

    ``activate`` adds the bias and applies LeakyReLU(0.2) x sqrt(2) (mmcv's ``FusedBiasLeakyReLU``, whose
    bias is the only bias of an activated conv in the seed).
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, *, downsample: bool = False,
        bias: bool = True, activate: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.blur = _Blur((kernel_size // 2 + 1, (kernel_size + 1) // 2)) if downsample else None
        self.stride, self.padding = (2, 0) if downsample else (1, kernel_size // 2)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.blur is not None:
            x = self.blur(x)
        if self.activate:
            x = F.conv2d(x, self.weight * self.scale, None, self.stride, self.padding)
            return _biased_leaky_relu(x, self.bias)
        return F.conv2d(x, self.weight * self.scale, self.bias, self.stride, self.padding)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (and the same optional fused activation)."""

    def __init__(self, in_features: int, out_features: int, *, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.scale = 1.0 / math.sqrt(in_features)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.activate:
            return _biased_leaky_relu(F.linear(x, self.weight * self.scale), self.bias)
        return F.linear(x, self.weight * self.scale, self.bias)


def _biased_leaky_relu(x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if bias is not None:
        x = x + bias.view(1, -1, *([1] * (x.dim() - 2)))
    return F.leaky_relu(x, LEAKY_SLOPE) * math.sqrt(2.0)


class StyleGAN2ResBlock(nn.Module):
    """conv3x3 -> blurred stride-2 conv3x3, plus a blurred stride-2 1x1 shortcut (no bias), summed / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = EqualConv2d(in_channels, in_channels, 3, activate=True)
        self.conv2 = EqualConv2d(in_channels, out_channels, 3, downsample=True, activate=True)
        self.skip = EqualConv2d(in_channels, out_channels, 1, downsample=True, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.skip(x) + self.conv2(self.conv1(x))) / math.sqrt(2.0)


def minibatch_stddev(x: torch.Tensor, group_size: int = 4, eps: float = 1e-8) -> torch.Tensor:
    """Append one channel: the std over groups of ``min(B, group_size)`` samples, averaged over (C, H, W).

    Sample ``i`` is grouped with ``i mod (B / groups)`` as in the seed's ``'(bg b) c h w -> bg b c h w'``.
    """
    b, _, h, w = x.shape
    groups = min(b, group_size)
    if b % groups:
        raise ValueError(f"the minibatch-std layer needs a batch divisible by {groups}, got {b} images")
    y = x.float().reshape(groups, b // groups, *x.shape[1:])
    std = (y.var(0, unbiased=False) + eps).sqrt().mean(dim=(1, 2, 3))
    return torch.cat([x, std.to(x.dtype).repeat(groups).view(b, 1, 1, 1).expand(b, 1, h, w)], dim=1)


class StyleGAN2Discriminator(nn.Module):
    """The seed's StyleGAN2 discriminator: 1x1 from-RGB, residual blocks down to 4 x 4, minibatch std, conv, 2 linears."""

    def __init__(self, image_size: int = 256, max_channels: int = 512) -> None:
        super().__init__()
        table = _channel_table(SEED_CHANNELS, image_size, max_channels)
        widths = [table[2**i] for i in range(int(math.log2(image_size)), 1, -1)]
        self.image_size = image_size
        self.from_rgb = EqualConv2d(3, widths[0], 1, activate=True)
        self.blocks = nn.Sequential(*(StyleGAN2ResBlock(a, b) for a, b in zip(widths[:-1], widths[1:])))
        self.final_conv = EqualConv2d(widths[-1] + 1, table[4], 3, activate=True)
        self.final_linear = nn.Sequential(
            EqualLinear(table[4] * 4 * 4, table[4], activate=True), EqualLinear(table[4], 1)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_input(images, self.image_size)
        x = self.blocks(self.from_rgb(images))
        x = self.final_conv(minibatch_stddev(x))
        return self.final_linear(x.flatten(1))


# --- LlamaGen's --disc-type stylegan --------------------------------------------------------------
class _BinomialBlur(nn.Module):
    """[1, 2, 1] x [1, 2, 1] / 16 filter, reflected borders, same size (kornia ``filter2d(normalized=True)``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("f", torch.tensor([1.0, 2.0, 1.0]))  # persistent: LlamaGen's state dicts carry it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kernel = torch.outer(self.f, self.f)
        kernel = (kernel / kernel.abs().sum()).to(x.dtype)
        channels = x.shape[1]
        x = F.pad(x, (1, 1, 1, 1), mode="reflect")
        return F.conv2d(x, kernel.expand(channels, 1, 3, 3), groups=channels)


class LlamaGenDiscriminatorBlock(nn.Module):
    """(conv3x3, lrelu) x 2 -> blur -> stride-2 conv3x3, plus a stride-2 1x1 residual, summed / sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_res = nn.Conv2d(in_channels, out_channels, 1, stride=2)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.LeakyReLU(LEAKY_SLOPE),
        )
        self.downsample = nn.Sequential(_BinomialBlur(), nn.Conv2d(out_channels, out_channels, 3, padding=1, stride=2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv_res(x) + self.downsample(self.net(x))) / math.sqrt(2.0)


class LlamaGenStyleGANDiscriminator(nn.Module):
    """LlamaGen's StyleGAN discriminator (PyTorch default initialisation, as LlamaGen leaves it)."""

    def __init__(self, image_size: int = 256, max_channels: int = 512) -> None:
        super().__init__()
        table = _channel_table(LLAMAGEN_CHANNELS, image_size, max_channels)
        self.image_size = image_size
        width = table[image_size]
        blocks: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE)]
        for level in range(int(math.log2(image_size)), 2, -1):
            blocks.append(LlamaGenDiscriminatorBlock(width, table[2 ** (level - 1)]))
            width = table[2 ** (level - 1)]
        self.blocks = nn.ModuleList(blocks)
        self.final_conv = nn.Sequential(nn.Conv2d(width, table[4], 3, padding=1), nn.LeakyReLU(LEAKY_SLOPE))
        self.final_linear = nn.Sequential(
            nn.Linear(table[4] * 4 * 4, table[4]), nn.LeakyReLU(LEAKY_SLOPE), nn.Linear(table[4], 1)
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_input(images, self.image_size)
        x = images
        for block in self.blocks:
            x = block(x)
        return self.final_linear(self.final_conv(x).flatten(1))
