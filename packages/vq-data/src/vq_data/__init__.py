"""vq-data: image sources -> webdataset shards with manifests, and loaders."""

from vq_data.shards import (
    SampleError,
    ShardError,
    ShardSetWriter,
    check_key,
    iter_samples,
    iter_shard,
    open_manifest,
    verify_shards,
)

__version__ = "0.1.0"
