"""vq-eval: FID/IS (pytorch-fid's Inception), PSNR, SSIM, LPIPS, rFID, codebook usage, a trained-at-run-time
pixel judge (class accuracy, Fréchet distance, precision/recall), and reports."""

from vq_eval.codebook import usage_summary
from vq_eval.fid import accumulate_inception, compute_reference, evaluate_generation, inception_statistics, provenance
from vq_eval.frechet import frechet_distance
from vq_eval.inception import (
    INCEPTION_WEIGHTS_ENV,
    INCEPTION_WEIGHTS_NAME,
    FIDInceptionV3,
    InceptionOutput,
    load_fid_inception,
    random_inception_state,
    resolve_inception_weights,
)
from vq_eval.generation import GenerationResult, evaluate_samples, load_reference, reference_from_images
from vq_eval.inception_score import InceptionScore, inception_score_of_logits
from vq_eval.kid import kernel_inception_distance
from vq_eval.precision_recall import precision_recall
from vq_eval.probe import ProbeConfig, linear_probe
from vq_eval.sample_batch import SampleBatchError, open_sample_batch, write_sample_batch
from vq_eval.judge import GenerationScores, PixelJudge, grey_pixels, knn_precision_recall
from vq_eval.perceptual import LPIPS_BACKBONE_ENV, LPIPS_WEIGHTS_ENV, load_lpips
from vq_eval.plots import class_rows_grid, codebook_usage_figure, patches_per_token, png_bytes, reconstruction_grid
from vq_eval.psnr import psnr
from vq_eval.reconstruction import (
    RECONSTRUCTION_METRICS,
    Autoencoder,
    evaluate_reconstruction,
    to_8bit_levels,
    usage_for,
)
from vq_eval.reference import ReferenceError, ReferenceStats
from vq_eval.report import Picture, format_table, write_metrics, write_report
from vq_eval.sources import ImageBatches, SourceError, list_images, open_images
from vq_eval.ssim import ssim
from vq_eval.statistics import FeatureStatistics
from vq_eval.tokenizer_report import ExampleCollector, tokenizer_report
from vq_eval.version import __version__
from vq_eval.weights import WeightsNotFoundError

__all__ = [
    "GenerationResult",
    "ProbeConfig",
    "SampleBatchError",
    "evaluate_samples",
    "inception_score_of_logits",
    "kernel_inception_distance",
    "linear_probe",
    "load_reference",
    "open_sample_batch",
    "precision_recall",
    "reference_from_images",
    "write_sample_batch",
    "random_inception_state",
    "INCEPTION_WEIGHTS_ENV",
    "INCEPTION_WEIGHTS_NAME",
    "LPIPS_BACKBONE_ENV",
    "LPIPS_WEIGHTS_ENV",
    "RECONSTRUCTION_METRICS",
    "Autoencoder",
    "ExampleCollector",
    "FIDInceptionV3",
    "FeatureStatistics",
    "GenerationScores",
    "PixelJudge",
    "grey_pixels",
    "knn_precision_recall",
    "ImageBatches",
    "InceptionOutput",
    "InceptionScore",
    "Picture",
    "ReferenceError",
    "ReferenceStats",
    "SourceError",
    "WeightsNotFoundError",
    "__version__",
    "accumulate_inception",
    "class_rows_grid",
    "codebook_usage_figure",
    "compute_reference",
    "evaluate_generation",
    "evaluate_reconstruction",
    "format_table",
    "frechet_distance",
    "inception_statistics",
    "list_images",
    "load_fid_inception",
    "load_lpips",
    "open_images",
    "patches_per_token",
    "png_bytes",
    "provenance",
    "psnr",
    "reconstruction_grid",
    "resolve_inception_weights",
    "ssim",
    "to_8bit_levels",
    "tokenizer_report",
    "usage_for",
    "usage_summary",
    "write_metrics",
    "write_report",
]
