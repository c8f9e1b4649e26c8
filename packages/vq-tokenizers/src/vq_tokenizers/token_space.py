"""Token-space identity that covers learned weights, not only the config.

Two tokenizers of one preset trained with other seeds (or Cluster codebooks clustered on other data)
give different tokens for the same image; a config hash alone would call their token shards
interchangeable.  The identity therefore hashes the config together with every tensor that decides
which token an image gets (encoder, projections, codebook) - and nothing that does not (decoders,
usage statistics), so a pixel decoder holding a frozen copy of its source reports the source's identity.

The digest is taken over the tensors in memory - sorted names, then per tensor its name, dtype, shape
and raw bytes - so it does not depend on the checkpoint file format (safetensors, a converted
release), on the device or on the memory layout, and it reads every byte once (sha256 at memory
speed, no dtype conversion or copy beyond moving to the CPU).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import torch

from vq_core import StrictConfig, config_hash

# Bumped whenever what goes into the digest changes, so old and new identities never collide.
DIGEST_VERSION = "vq-token-space/2"


def tensors_digest(tensors: Mapping[str, torch.Tensor], *, prefix: str = "") -> str:
    """sha256 hex digest of named tensors: sorted names, each with dtype, shape and raw (native-order) bytes."""
    digest = hashlib.sha256(prefix.encode())
    for name in sorted(tensors):
        tensor = tensors[name].detach().to("cpu").contiguous()
        header = json.dumps([name, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)]).encode()
        digest.update(len(header).to_bytes(8, "little") + header)
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())  # the buffer itself, no copy
    return digest.hexdigest()


def weights_digest(config: StrictConfig, tensors: Mapping[str, torch.Tensor]) -> str:
    """Token-space identity (32 hex digits, 128 bits): the config hash and the token-deciding tensors."""
    return tensors_digest(tensors, prefix=f"{DIGEST_VERSION}\n{config_hash(config)}\n")[:32]


def module_tensors(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's state dict with ``prefix.`` on every key, for :func:`weights_digest`."""
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}
