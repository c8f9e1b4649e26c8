"""Token-space identity that covers learned weights, not only the config.

Two Cluster tokenizers with the same config but codebooks clustered on different data (or two VQ-KD
runs with different seeds) give different tokens for the same image; a config hash alone would call
their token shards interchangeable.  The digest therefore hashes the config together with every tensor
that decides which token an image gets (encoder, projection, codebook) - and nothing that does not
(decoders, usage statistics), so a pixel decoder holding a frozen copy of the source reports the
same hash as the source itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

from vq_core import StrictConfig, config_hash


def weights_digest(config: StrictConfig, tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 (first 16 hex digits) of the config hash and the named tensors (device and layout independent)."""
    digest = hashlib.sha256(config_hash(config).encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu", torch.float32).contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict with ``prefix.`` on every key, for :func:`weights_digest`."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}
