"""vq-eval: FID/IS (pytorch-fid's Inception), PSNR, SSIM, LPIPS, rFID, codebook usage, a trained-at-run-time
pixel judge (class accuracy, Fréchet distance, precision/recall), and reports."""

from vq_core.lazy import lazy_exports
from vq_eval.version import __version__

__all__ = lazy_exports(
    __name__,
    {
        "vq_eval.codebook": ["usage_summary"],
        "vq_eval.fid": [
            "accumulate_inception", "compute_reference", "evaluate_generation", "inception_statistics", "provenance",
        ],
        "vq_eval.frechet": ["frechet_distance"],
        "vq_eval.inception": [
            "INCEPTION_WEIGHTS_ENV", "INCEPTION_WEIGHTS_NAME", "FIDInceptionV3", "InceptionOutput",
            "load_fid_inception", "random_inception_state", "resolve_inception_weights",
        ],
        "vq_eval.generation": ["GenerationResult", "evaluate_samples", "load_reference", "reference_from_images"],
        "vq_eval.inception_score": ["InceptionScore", "inception_score_of_logits"],
        "vq_eval.kid": ["kernel_inception_distance"],
        "vq_eval.precision_recall": ["precision_recall"],
        "vq_eval.probe": ["ProbeConfig", "linear_probe"],
        "vq_eval.sample_batch": ["SampleBatchError", "open_sample_batch", "write_sample_batch"],
        "vq_eval.judge": ["GenerationScores", "PixelJudge", "grey_pixels"],
        "vq_eval.perceptual": ["LPIPS_BACKBONE_ENV", "LPIPS_WEIGHTS_ENV", "load_lpips"],
        "vq_eval.plots": [
            "class_rows_grid", "codebook_usage_figure", "patches_per_token", "png_bytes", "reconstruction_grid",
        ],
        "vq_eval.psnr": ["psnr"],
        "vq_eval.reconstruction": [
            "RECONSTRUCTION_METRICS", "Autoencoder", "evaluate_reconstruction", "to_8bit_levels", "usage_for",
        ],
        "vq_eval.reference": ["ReferenceError", "ReferenceStats"],
        "vq_eval.report": ["Picture", "format_table", "write_metrics", "write_report"],
        "vq_eval.sources": ["ImageBatches", "SourceError", "list_images", "open_images"],
        "vq_eval.ssim": ["ssim"],
        "vq_eval.statistics": ["FeatureStatistics"],
        "vq_eval.tokenizer_report": ["ExampleCollector", "tokenizer_report"],
        "vq_eval.weights": ["WeightsNotFoundError"],
    },
)
__all__.append("__version__")
