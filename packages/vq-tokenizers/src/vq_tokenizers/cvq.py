"""CVQ-VAE (Zheng & Vedaldi 2023): VQGAN whose codebook uses cosine distance and re-initialises rarely
used codes from anchors (encoder outputs), so the whole codebook stays in use.

The anchor machinery lives in vq-core's ``VectorQuantizer``; this family only insists on it, so a
checkpoint or token shard labelled ``cvq`` really was made that way.
"""

from __future__ import annotations

from vq_core import ConfigError
from vq_tokenizers.base import register_tokenizer
from vq_tokenizers.vqgan import VQGAN, VQGANConfig


@register_tokenizer
class CVQVAE(VQGAN):
    """VQGAN whose quantizer uses cosine distance and re-initialises rarely used codes from anchors."""

    family = "cvq"

    def __init__(self, config: VQGANConfig) -> None:
        q = config.quantizer
        if q.distance != "cosine" or not q.anchor_reinit:
            raise ConfigError(
                f"cvq tokenizer needs quantizer.distance='cosine' and anchor re-initialisation, got distance="
                f"{q.distance!r}, anchor_reinit={q.anchor_reinit!r}; use a cvq preset or family 'vqgan'"
            )
        super().__init__(config)
