"""Webdataset shard sets: writing (resumable, atomic), reading and verification."""

from vq_data.shards.codec import SampleError, check_key
from vq_data.shards.reader import ShardError, iter_samples, iter_shard, open_manifest, verify_shards
from vq_data.shards.writer import ShardSetWriter

__all__ = [
    "SampleError",
    "ShardError",
    "ShardSetWriter",
    "check_key",
    "iter_samples",
    "iter_shard",
    "open_manifest",
    "verify_shards",
]
