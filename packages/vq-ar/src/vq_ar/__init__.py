"""vq_ar."""
