"""Sampled tokens as a token shard set (``OUT/tokens/``), so ``vq-tok decode OUT/tokens --ckpt TOKENIZER`` decodes them.

The shard set is the project's one token contract (webdataset members ``tokens.npy`` / ``cls`` / ``json``
plus a manifest): its manifest carries the tokenizer identity the AR checkpoint was trained on, so the
decoder is checked exactly as for tokenized images, and a decoder of another token space is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from vq_ar.checkpoint import LoadedAR
from vq_data import ShardSetWriter

SAMPLE_TOKENS_DIR = "tokens"


def write_sample_shards(
    out_dir: str | os.PathLike[str],
    loaded: LoadedAR,
    tokens: np.ndarray,
    labels: list[int],
    *,
    per_class: int,
    record: dict[str, Any],
    samples_per_shard: int = 256,
) -> Path:
    """Write (N, h, w) sampled tokens with their labels; keys ``class<label>_<i>`` as the sample PNGs are named."""
    tokenizer = loaded.tokenizer.model_copy(update={"ten_crop": False})  # one sampled view per image
    directory = Path(out_dir)
    with ShardSetWriter(
        directory, kind="tokens", dataset=loaded.dataset, tokenizer=tokenizer, samples_per_shard=samples_per_shard,
        tool="vq-ar sample", tool_version=_version(), overwrite=True,
    ) as writer:
        for i, (grid, label) in enumerate(zip(tokens, labels)):
            writer.write({
                "__key__": f"class{label:04d}_{i % per_class:04d}",
                "tokens.npy": grid.astype(tokenizer.dtype),
                "cls": int(label),
                "json": {"sampled_by": str(loaded.path), "index": i, **record},
            })
    return directory


def _version() -> str:
    from vq_ar import __version__

    return __version__
