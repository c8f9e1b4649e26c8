"""vq-tokenizers: VQGAN, CVQ-VAE, FSQ, VQ-KD and Cluster tokenizers, pixel decoders, converters."""

from vq_core.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = lazy_exports(
    __name__,
    {
        "vq_tokenizers.autoencoder": ["AutoencoderConfig", "AutoencoderOutput", "ConvVQTokenizer"],
        "vq_tokenizers.base": [
            "Tokenizer", "build_tokenizer", "load_tokenizer", "register_tokenizer", "save_tokenizer", "tokenizer_class",
        ],
        "vq_tokenizers.cluster": [
            "ClusterConfig", "ClusterJob", "ClusterTokenizer", "FitReport", "SourceBatches", "fit_cluster",
            "fit_cluster_tokenizer",
        ],
        "vq_tokenizers.cvq": ["CVQVAE"],
        "vq_tokenizers.fsq": ["FSQTokenizer", "FSQTokenizerConfig"],
        "vq_tokenizers.pixel_decoder": ["PixelDecoderConfig", "PixelDecoderTokenizer"],
        "vq_tokenizers.training.pixel_decoder": ["PIXEL_DECODER_PRESETS", "PixelDecoderJob", "train_pixel_decoder"],
        "vq_tokenizers.presets": ["PRESETS", "Preset", "get_preset"],
        "vq_tokenizers.tokenize": ["decode_shards", "reconstruct_image", "tokenize_shards", "tokenizer_info"],
        "vq_tokenizers.tokenize_ray": ["tokenize_shards_ray"],
        "vq_tokenizers.training.job": ["TrainJob", "build_run", "train_tokenizer"],
        "vq_tokenizers.vqgan": ["VQGAN", "VQGANConfig"],
        "vq_tokenizers.vqkd": ["VQKD", "VQKDConfig"],
        "vq_tokenizers.training.vqkd": ["VQKD_PRESETS", "VQKDJob", "VQKDTrainConfig", "VQKDTrainer", "train_vqkd"],
    },
)
