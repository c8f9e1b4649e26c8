"""vq_eval."""
