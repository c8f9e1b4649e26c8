"""vq-core: quantizers, codebook statistics and the shared config/checkpoint/manifest types."""

from vq_core.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = lazy_exports(
    __name__,
    {
        "vq_core.checkpoint": [
            "Checkpoint", "CheckpointError", "load_checkpoint", "nonfinite_tensors", "save_checkpoint",
        ],
        "vq_core.checkpoint_upgrade": ["upgrade_checkpoint"],
        "vq_core.divergence": ["TrainingDivergedError", "divergence_error", "newest_finite_checkpoint"],
        "vq_core.metrics_log": ["append_metrics", "trim_metrics"],
        "vq_core.foreign_checkpoint": ["UntrustedCheckpointError", "load_foreign_checkpoint"],
        "vq_core.config": ["ConfigError", "StrictConfig", "config_hash"],
        "vq_core.io": ["atomic_write", "atomic_write_bytes", "atomic_write_text", "file_sha256"],
        "vq_core.manifest": [
            "MANIFEST_NAME", "SCHEMA_VERSION", "DatasetInfo", "Manifest", "ManifestError", "ShardEntry",
            "TokenizerInfo", "check_shard_name", "manifest_json_schema",
        ],
        "vq_core.launch": ["TrainSession", "copy_checkpoint_files", "final_metrics", "launch", "local_session"],
        "vq_core.launch_cli": ["asks_for_ray", "launch_command", "launch_options"],
        "vq_core.progress": ["progress"],
        "vq_core.distance": ["CodebookSearch", "nearest_code"],
        "vq_core.kmeans": ["MiniBatchKMeans", "inertia", "kmeans", "kmeans_plus_plus"],
        "vq_core.quantizers": [
            "FSQ", "LFQ", "FSQConfig", "LFQConfig", "ResidualVQ", "ResidualVQConfig", "VectorQuantizer",
            "VectorQuantizerConfig",
        ],
        "vq_core.stats": ["CodebookUsage", "counts_entropy"],
        "vq_core.vqpt": ["vqpt"],
    },
)
