"""LPIPS(VGG16) perceptual distance from the ``lpips`` package, with weights loaded from local files only.

The package ships the calibrated linear heads (``lpips/weights/v0.1/vgg.pth``) but fetches the VGG16
ImageNet trunk from the internet.  Here the trunk comes from a local torchvision ``vgg16`` state dict
(the file torchvision itself caches, ``vgg16-397923af.pth``); when it is absent the error names the
file and the way out (``perceptual_weight=0``).  The network is built on the meta device and filled
from the two files, so no 138M-parameter classifier is ever initialised just to be thrown away.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import lpips as lpips_package
import torch
from torch import nn

VGG16_FILENAME = "vgg16-397923af.pth"
LPIPS_VGG_ENV = "VQ_LPIPS_VGG16"


def default_vgg16_path() -> Path:
    """``$VQ_LPIPS_VGG16`` if set, else torchvision's cache (``$TORCH_HOME/hub/checkpoints``)."""
    if os.environ.get(LPIPS_VGG_ENV):
        return Path(os.environ[LPIPS_VGG_ENV])
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILENAME


def _lin_heads_path() -> Path:
    return Path(lpips_package.__file__).parent / "weights" / "v0.1" / "vgg.pth"


class LPIPS(nn.Module):
    """Frozen LPIPS distance between image batches in [-1, 1]; returns one value per image, shape (B,)."""

    def __init__(self, vgg_weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        path = Path(vgg_weights) if vgg_weights else default_vgg16_path()
        if not path.is_file():
            raise FileNotFoundError(
                f"LPIPS needs the torchvision VGG16 ImageNet weights file {path} ({VGG16_FILENAME}); copy it there, "
                f"pass its path (lpips_vgg_weights / --lpips-vgg / ${LPIPS_VGG_ENV}), or set perceptual_weight=0"
            )
        with warnings.catch_warnings(), torch.device("meta"):
            warnings.simplefilter("ignore")  # lpips passes torchvision's deprecated `pretrained=` argument
            net = lpips_package.LPIPS(pretrained=False, net="vgg", pnet_rand=True, verbose=False)
        net.scaling_layer = lpips_package.ScalingLayer()
        state = torch.load(_lin_heads_path(), map_location="cpu", weights_only=True)
        state.update(_trunk_state(net, path))
        # `lins.<i>` aliases `lin<i>` and the scaling constants are real already, so strict=False.
        net.load_state_dict(state, strict=False, assign=True)
        unfilled = [name for name, t in [*net.named_parameters(), *net.named_buffers()] if t.is_meta]
        if unfilled:
            raise ValueError(f"{path}: LPIPS weights do not fit: nothing loaded for {unfilled[:4]}")
        self.net = net.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> LPIPS:
        """Stay in eval mode: the linear heads carry dropout that must not fire during training."""
        return super().train(False)

    def forward(self, images: torch.Tensor, reconstructions: torch.Tensor) -> torch.Tensor:
        return self.net(images, reconstructions).flatten()


def _trunk_state(net: nn.Module, path: Path) -> dict[str, torch.Tensor]:
    """Map torchvision ``features.<i>.*`` keys onto lpips' ``net.slice<k>.<i>.*`` names."""
    try:
        vgg = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable torch state dict ({type(err).__name__}: {err})") from err
    state = {}
    for name in net.state_dict():
        if not name.startswith("net.slice"):
            continue
        _, _, index, kind = name.split(".")
        source = f"features.{index}.{kind}"
        if source not in vgg:
            raise ValueError(f"{path} is not a torchvision vgg16 state dict: it has no {source!r}")
        state[name] = vgg[source].float()
    return state
