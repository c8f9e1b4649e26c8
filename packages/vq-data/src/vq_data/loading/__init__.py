"""Resumable, rank/worker-aware loading of image and token shard sets."""

from vq_data.loading.dataset import ImageDecoder, ShardDataset, TokenDecoder, sample_generator
from vq_data.loading.distributed import resolve_rank
from vq_data.loading.loader import ShardLoader, image_loader, token_loader
from vq_data.loading.plan import Uneven

__all__ = [
    "ImageDecoder",
    "ShardDataset",
    "ShardLoader",
    "TokenDecoder",
    "Uneven",
    "image_loader",
    "resolve_rank",
    "sample_generator",
    "token_loader",
]
