"""LPIPS (Zhang et al. 2018) via the ``lpips`` package, with every weight file read from disk.

``lpips.LPIPS`` asks torchvision to download its backbone (AlexNet/VGG/SqueezeNet ImageNet weights),
which fails offline and would silently pick whatever torchvision serves.  Here the model is built
with a random trunk and random linear heads (``pnet_rand=True, pretrained=False``: nothing is
fetched), then both parts are loaded from local files:

* backbone: torchvision's own checkpoint file (``alexnet-owt-7be5be79.pth`` ...), looked for at
  the given path, ``$VQ_LPIPS_BACKBONE``, ``~/.cache/vq/`` and torch hub's checkpoint directory
  (where torchvision would have downloaded it);
* linear heads: the calibrated ``weights/v0.1/<net>.pth`` that ships inside the ``lpips`` wheel, or
  the given path / ``$VQ_LPIPS_WEIGHTS``.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from vq_core import file_sha256
from vq_eval.weights import read_state_dict, resolve_weights

if TYPE_CHECKING:
    import lpips

LpipsNet = Literal["alex", "vgg", "squeeze"]
LPIPS_BACKBONE_ENV = "VQ_LPIPS_BACKBONE"
LPIPS_WEIGHTS_ENV = "VQ_LPIPS_WEIGHTS"
_BACKBONE_URLS = {
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


def _backbone_defaults(net: LpipsNet) -> list[Path]:
    name = _BACKBONE_URLS[net].rsplit("/", 1)[1]
    return [Path("~/.cache/vq").expanduser() / name, Path(torch.hub.get_dir()) / "checkpoints" / name]


def _linear_defaults(net: LpipsNet) -> list[Path]:
    import lpips

    return [Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"]


def load_lpips(
    net: LpipsNet = "alex",
    *,
    backbone_weights: str | os.PathLike[str] | None = None,
    linear_weights: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
) -> lpips.LPIPS:
    """An eval-mode ``lpips.LPIPS`` (v0.1) with backbone and linear heads loaded from local files.

    Call it as ``model(images, references)`` on [-1, 1] images; it returns (B, 1, 1, 1) distances.
    """
    import lpips

    if net not in _BACKBONE_URLS:
        raise ValueError(f"unknown LPIPS network {net!r}; use one of {sorted(_BACKBONE_URLS)}")
    backbone_path = resolve_weights(
        f"LPIPS {net} backbone", backbone_weights, LPIPS_BACKBONE_ENV, _backbone_defaults(net),
        url=_BACKBONE_URLS[net], flag="lpips-backbone",
    )  # fmt: skip
    linear_path = resolve_weights(
        f"LPIPS {net} linear-layer", linear_weights, LPIPS_WEIGHTS_ENV, _linear_defaults(net), flag="lpips-weights"
    )
    with warnings.catch_warnings():  # lpips still passes torchvision's deprecated ``pretrained=False``
        warnings.simplefilter("ignore", UserWarning)
        model = lpips.LPIPS(pretrained=False, net=net, version="0.1", pnet_rand=True, verbose=False)

    # the lpips trunk splits torchvision's ``features`` Sequential into slices, keeping child names
    backbone = read_state_dict(backbone_path, f"LPIPS {net} backbone weights")
    trunk = {}
    for key in model.net.state_dict():
        source = "features." + key.split(".", 1)[1]
        if source not in backbone:
            raise ValueError(
                f"LPIPS {net} backbone weights {backbone_path} lack {source!r}; expected torchvision's "
                f"{_BACKBONE_URLS[net].rsplit('/', 1)[1]} state dict"
            )
        trunk[key] = backbone[source]
    model.net.load_state_dict(trunk)

    linear = read_state_dict(linear_path, f"LPIPS {net} linear-layer weights")
    wanted = [key for key in model.state_dict() if re.match(r"lin\d+\.", key)]  # ``lins.*`` aliases them
    missing = [key for key in wanted if key not in linear]
    if missing:
        raise ValueError(f"LPIPS {net} linear-layer weights {linear_path} lack {missing}; expected lpips' weights/v0.1/{net}.pth layout")
    model.load_state_dict({key: linear[key] for key in wanted}, strict=False)
    # reports name the network and the exact files (``pnet_type`` is lpips' own "alex"/"vgg"/"squeeze")
    model.backbone_sha256 = file_sha256(backbone_path)
    model.linear_sha256 = file_sha256(linear_path)
    return model.eval().requires_grad_(False).to(device)
