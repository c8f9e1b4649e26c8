"""Webdataset shard sets: writing (resumable, atomic), reading and verification."""

from vq_data.shards.codec import SampleError, check_key, key_output_path
from vq_data.shards.reader import iter_samples, iter_shard, open_manifest, shard_path, verify_shards
from vq_data.shards.tarstream import ShardError
from vq_data.shards.writer import ShardSetWriter

__all__ = [
    "SampleError",
    "ShardError",
    "ShardSetWriter",
    "check_key",
    "key_output_path",
    "iter_samples",
    "iter_shard",
    "open_manifest",
    "shard_path",
    "verify_shards",
]
