"""The Inception-v3 of TensorFlow's FID code (2015-12-05 graph), as a plain ``nn.Module``.

FID numbers are only comparable when computed with this exact network: the 2015 TF graph differs
from torchvision's Inception-v3 in its weights, a 1008-way classifier, average pools that ignore
padding, and a max pool in the last block.  Module and parameter names follow torchvision's
``Inception3`` so that pytorch-fid's ported weights (``pt_inception-2015-12-05-6726825d.pth``) load
with ``strict=True``; pytorch-fid itself is only a test dependency, used to check equality.

Inputs are images in [-1, 1] (the project's convention) of any size.  Two ways to bring them to the
network's 299x299 input, chosen per model (``resize``) and recorded with every statistic:

* ``"pytorch-fid"`` (default): ``F.interpolate`` bilinear (``align_corners=False``, no antialias) of
  the [0, 1] image, then ``2x - 1`` - pytorch-fid's arithmetic.
* ``"tf1"``: what the 2015 TF graph itself does to the uint8 image it is fed, and so what the ADM
  evaluator of guided-diffusion (LlamaGen, DiT, MAR tables) and torch-fidelity compute: TF 1.x's
  legacy bilinear resize (source pixel ``i * in / out``, no half-pixel offset) of 0..255 values,
  then ``(x - 128) / 128``.  ADM reference batches' stored statistics were made this way.

Besides the 2048-d pool features the network gives ADM's *spatial* features for sFID: the TF graph's
``mixed_6/conv`` tensor, the ReLU output of the 1x1 branch of the third 17x17 block (``Mixed_6d``
here; TF names ``mixed``...``mixed_10`` are ``Mixed_5b``...``Mixed_7c``), first 7 of its 192 channels,
flattened in TF's (h, w, c) order to 17 * 17 * 7 = 2023 values.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from vq_core import file_sha256
from vq_eval.weights import read_state_dict, resolve_weights
from vq_eval.names import RESIZES, Resize

log = logging.getLogger(__name__)

INCEPTION_WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_WEIGHTS_NAME}"
INCEPTION_WEIGHTS_ENV = "VQ_INCEPTION_WEIGHTS"
INPUT_SIZE = 299
POOL_DIM = 2048
NUM_LOGITS = 1008
SPATIAL_CHANNELS = 7  # ADM keeps mixed_6/conv[..., :7]
SPATIAL_DIM = 17 * 17 * SPATIAL_CHANNELS

PREPROCESSINGS: dict[str, str] = {
    "pytorch-fid": "bilinear resize to 299x299 (align_corners=False, no antialias), inputs in [-1, 1]",
    "tf1": "TF1 legacy bilinear resize to 299x299 of 0..255 values, then (x - 128) / 128 (ADM evaluator, torch-fidelity)",
}
PREPROCESSING = PREPROCESSINGS["pytorch-fid"]


def default_inception_paths() -> list[Path]:
    """Where the weights are looked for: the project cache, then where pytorch-fid downloads them."""
    return [
        Path("~/.cache/vq").expanduser() / INCEPTION_WEIGHTS_NAME,
        Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_NAME,
    ]


def resolve_inception_weights(path: str | os.PathLike[str] | None = None) -> Path:
    """The weight file to use: ``path``, else ``$VQ_INCEPTION_WEIGHTS``, else the default caches."""
    return resolve_weights(
        "FID Inception-v3",
        path,
        INCEPTION_WEIGHTS_ENV,
        default_inception_paths(),
        url=INCEPTION_WEIGHTS_URL,
        flag="inception-weights",
    )


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (TF's epsilon 1e-3), ReLU."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int], stride: int = 1, padding: int | tuple[int, int] = 0
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)


def _avg_pool_unpadded(x: torch.Tensor) -> torch.Tensor:
    """3x3 average pool whose border windows average only real pixels, as TF's pool does."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class MixedA(nn.Module):
    """35x35 block: 1x1, 5x5, double 3x3 and pooled branches."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, 1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, 1)
        self.branch5x5_2 = BasicConv2d(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pooled = self.branch_pool(_avg_pool_unpadded(x))
        return torch.cat([self.branch1x1(x), b5, b3, pooled], 1)


class ReductionB(nn.Module):
    """35x35 -> 17x17 grid reduction."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, 1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class MixedC(nn.Module):
    """17x17 block with factorised 7x7 convolutions (1x7 then 7x1)."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7_2 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, 1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_1x1(x)[0]

    def forward_with_1x1(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The block's output and its 1x1 branch (TF ``mixed_N/conv``), which sFID reads in ``Mixed_6d``."""
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        pooled = self.branch_pool(_avg_pool_unpadded(x))
        return torch.cat([b1, b7, d, pooled], 1), b1


class ReductionD(nn.Module):
    """17x17 -> 8x8 grid reduction."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch3x3_2 = BasicConv2d(192, 320, 3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, 1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, 3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class MixedE(nn.Module):
    """8x8 block with split 1x3/3x1 branches.

    ``pool="max"`` reproduces the last block of the 2015 graph, which max-pools where the paper
    average-pools; FID features depend on that quirk.
    """

    def __init__(self, in_channels: int, pool: Literal["avg", "max"]) -> None:
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, 1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, 1)
        self.branch3x3_2a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, 1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.branch3x3_1(x)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        if self.pool == "max":
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        else:
            pooled = _avg_pool_unpadded(x)
        return torch.cat(
            [
                self.branch1x1(x),
                self.branch3x3_2a(s),
                self.branch3x3_2b(s),
                self.branch3x3dbl_3a(d),
                self.branch3x3dbl_3b(d),
                self.branch_pool(pooled),
            ],
            1,
        )


class InceptionOutput(NamedTuple):
    """``pool``: (B, 2048) final average-pool features (FID); ``logits``: (B, 1008) classifier output."""

    pool: torch.Tensor
    logits: torch.Tensor


class InceptionFeatures(NamedTuple):
    """``pool``: (B, 2048) FID features; ``spatial``: (B, 2023) sFID features (ADM's ``mixed_6/conv[..., :7]``)."""

    pool: torch.Tensor
    spatial: torch.Tensor


def resize_tf1(images: torch.Tensor, size: int) -> torch.Tensor:
    """TF 1.x ``resize_bilinear(align_corners=False)``: output pixel ``i`` samples input ``i * in / out``.

    Unlike ``F.interpolate`` there is no half-pixel shift, so the image moves by up to a pixel and
    the last output rows/columns repeat the border - the resize inside the FID graph.
    """

    def weights(length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        position = torch.arange(size, dtype=torch.float32, device=images.device) * torch.tensor(length / size, dtype=torch.float32)
        low = position.long()
        return low, (low + 1).clamp_max(length - 1), position - low.float()

    y0, y1, dy = weights(images.shape[-2])
    x0, x1, dx = weights(images.shape[-1])
    rows0, rows1 = images.index_select(-2, y0), images.index_select(-2, y1)
    top = rows0.index_select(-1, x0) + (rows0.index_select(-1, x1) - rows0.index_select(-1, x0)) * dx
    bottom = rows1.index_select(-1, x0) + (rows1.index_select(-1, x1) - rows1.index_select(-1, x0)) * dx
    return top + (bottom - top) * dy[:, None]


class FIDInceptionV3(nn.Module):
    """The FID Inception-v3; ``forward`` maps [-1, 1] images of any size to pool features and logits.

    ``logits`` are ``fc(pool)`` including the bias; :meth:`unbiased_logits` gives the bias-free
    variant that the original Inception Score code (and torch-fidelity) uses.
    """

    def __init__(self, resize: Resize = "pytorch-fid") -> None:
        super().__init__()
        if resize not in RESIZES:
            raise ValueError(f"unknown Inception resize {resize!r}; use one of {list(RESIZES)}")
        self.resize: Resize = resize
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
        self.Mixed_5b = MixedA(192, pool_features=32)
        self.Mixed_5c = MixedA(256, pool_features=64)
        self.Mixed_5d = MixedA(288, pool_features=64)
        self.Mixed_6a = ReductionB(288)
        self.Mixed_6b = MixedC(768, channels_7x7=128)
        self.Mixed_6c = MixedC(768, channels_7x7=160)
        self.Mixed_6d = MixedC(768, channels_7x7=160)
        self.Mixed_6e = MixedC(768, channels_7x7=192)
        self.Mixed_7a = ReductionD(768)
        self.Mixed_7b = MixedE(1280, pool="avg")
        self.Mixed_7c = MixedE(2048, pool="max")
        self.fc = nn.Linear(POOL_DIM, NUM_LOGITS)
        self.weights_path: str | None = None  # set by load_fid_inception, recorded in reference stats
        self.weights_sha256: str | None = None
        self.requires_grad_(False)
        self.eval()

    @property
    def preprocessing(self) -> str:
        """What the network does to its input, in words (recorded with every statistic)."""
        return PREPROCESSINGS[self.resize]

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> the 299x299 network input, with the arithmetic of ``self.resize``.

        ``"pytorch-fid"`` resizes [0, 1] images and then maps them to [-1, 1], in pytorch-fid's order,
        which keeps the two pipelines equal to float rounding; ``"tf1"`` works on 0..255 values as
        the TF graph does.
        """
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"FID Inception expects images (B, 3, H, W) in [-1, 1], got shape {tuple(images.shape)}")
        if self.resize == "tf1":
            x = (images.float() + 1) * 127.5
            if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
                x = resize_tf1(x, INPUT_SIZE)
            return (x - 128) / 128
        x = (images.float() + 1) / 2
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def features(self, images: torch.Tensor) -> InceptionFeatures:
        """Pool (FID) and spatial (sFID) features of [-1, 1] images in one pass."""
        pool, spatial = self._trunk(images, spatial=True)
        assert spatial is not None
        return InceptionFeatures(pool, spatial)

    def pool_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 2048) pool features of [-1, 1] images."""
        return self._trunk(images, spatial=False)[0]

    def _trunk(self, images: torch.Tensor, *, spatial: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.preprocess(images)
        x = F.max_pool2d(self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))), kernel_size=3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c):
            x = block(x)
        x, mixed_6_conv = self.Mixed_6d.forward_with_1x1(x)
        for block in (self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)
        if not spatial:
            return pool, None
        # TF's NHWC order, so statistics compare with ADM's stored mu_s / sigma_s
        return pool, mixed_6_conv[:, :SPATIAL_CHANNELS].permute(0, 2, 3, 1).flatten(1)

    def unbiased_logits(self, pool: torch.Tensor) -> torch.Tensor:
        """``pool @ W^T`` without the classifier bias, as the original Inception Score computes it."""
        return pool @ self.fc.weight.T

    def forward(self, images: torch.Tensor) -> InceptionOutput:
        pool = self.pool_features(images)
        return InceptionOutput(pool=pool, logits=self.fc(pool))


def load_fid_inception(
    path: str | os.PathLike[str] | None = None,
    *,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    resize: Resize = "pytorch-fid",
) -> FIDInceptionV3:
    """Build :class:`FIDInceptionV3` with weights from ``path`` / ``$VQ_INCEPTION_WEIGHTS`` / the caches.

    The resolved file and its sha256 are recorded on the model (``weights_path``,
    ``weights_sha256``) so reference statistics can name the exact network that made them.
    ``channels_last=True`` is ~1.4x faster on CPU; its features differ from pytorch-fid's by float
    summation order (~1e-6 relative), which is why it is not the default.
    """
    weights = resolve_inception_weights(path)
    model = FIDInceptionV3(resize)
    state = read_state_dict(weights, "FID Inception weights")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"FID Inception weights {weights} do not fit the pytorch-fid layout ({INCEPTION_WEIGHTS_NAME}): {err}") from err
    model.weights_path = str(weights)
    model.weights_sha256 = file_sha256(weights)
    log.info("loaded FID Inception weights %s (sha256 %s)", weights, model.weights_sha256[:12])
    return model.to(device, memory_format=torch.channels_last) if channels_last else model.to(device)


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict in the FID Inception layout with random weights, for tests and benchmarks on
    machines without the real file (same layout, so the loading path is the one real weights take).

    He-scaled convolutions and non-trivial batch-norm statistics keep activations O(1) through the
    whole depth, so feature comparisons are not trivially satisfied by all-zero outputs.
    """
    import torchvision

    torch.manual_seed(seed)
    model = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith("conv.weight"):
            value.normal_(0, (2 / value[0].numel()) ** 0.5)
        elif key.endswith(("bn.weight", "running_var")):
            value.uniform_(0.5, 1.5)
        elif key.endswith(("bn.bias", "running_mean")):
            value.normal_(0, 0.1)
        elif key.startswith("fc."):
            value.normal_(0, 0.02)
    return state
