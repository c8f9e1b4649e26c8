"""vq_pipeline."""
