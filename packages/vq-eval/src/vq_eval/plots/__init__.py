"""Pictures for evaluation reports: reconstruction grids, labelled class grids, codebook usage, patches per token."""

from vq_eval.plots.class_grid import class_rows_grid
from vq_eval.plots.grids import patches_per_token, reconstruction_grid
from vq_eval.plots.png import png_bytes
from vq_eval.plots.usage import codebook_usage_figure

__all__ = ["class_rows_grid", "codebook_usage_figure", "patches_per_token", "png_bytes", "reconstruction_grid"]
