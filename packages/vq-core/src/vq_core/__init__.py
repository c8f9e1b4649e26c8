"""vq-core: quantizers, codebook statistics and the shared config/checkpoint/manifest types."""

from vq_core.checkpoint import Checkpoint, CheckpointError, load_checkpoint, nonfinite_tensors, save_checkpoint
from vq_core.checkpoint_upgrade import upgrade_checkpoint
from vq_core.divergence import TrainingDivergedError, divergence_error, newest_finite_checkpoint
from vq_core.metrics_log import append_metrics, trim_metrics
from vq_core.foreign_checkpoint import UntrustedCheckpointError, load_foreign_checkpoint
from vq_core.config import ConfigError, StrictConfig, config_hash
from vq_core.io import atomic_write, atomic_write_bytes, atomic_write_text, file_sha256
from vq_core.manifest import (
    MANIFEST_NAME,
    SCHEMA_VERSION,
    DatasetInfo,
    Manifest,
    ManifestError,
    ShardEntry,
    TokenizerInfo,
    check_shard_name,
)
from vq_core.launch import TrainSession, copy_checkpoint_files, final_metrics, launch, local_session
from vq_core.launch_cli import asks_for_ray, launch_command, launch_options
from vq_core.manifest import manifest_json_schema
from vq_core.progress import progress
from vq_core.distance import CodebookSearch, nearest_code
from vq_core.kmeans import MiniBatchKMeans, inertia, kmeans, kmeans_plus_plus
from vq_core.quantizers import (
    FSQ,
    LFQ,
    FSQConfig,
    LFQConfig,
    ResidualVQ,
    ResidualVQConfig,
    VectorQuantizer,
    VectorQuantizerConfig,
)
from vq_core.stats import CodebookUsage, counts_entropy
from vq_core import vqpt  # vector-quantize-pytorch-style keyword quantizers: vq_core.vqpt.VectorQuantize, FSQ, ...

__version__ = "0.1.0"
