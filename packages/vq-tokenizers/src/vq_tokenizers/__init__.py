"""vq-tokenizers: VQGAN, CVQ-VAE, FSQ, VQ-KD and Cluster tokenizers, pixel decoders, converters."""

from vq_tokenizers.autoencoder import AutoencoderConfig, AutoencoderOutput, ConvVQTokenizer
from vq_tokenizers.base import (
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
    register_tokenizer,
    save_tokenizer,
    tokenizer_class,
)
from vq_tokenizers.cluster import (
    ClusterConfig,
    ClusterJob,
    ClusterTokenizer,
    FitReport,
    SourceBatches,
    fit_cluster,
    fit_cluster_tokenizer,
)
from vq_tokenizers.cvq import CVQVAE
from vq_tokenizers.fsq import FSQTokenizer, FSQTokenizerConfig
from vq_tokenizers.pixel_decoder import PixelDecoderConfig, PixelDecoderTokenizer
from vq_tokenizers.pixel_decoder_training import PIXEL_DECODER_PRESETS, PixelDecoderJob, train_pixel_decoder
from vq_tokenizers.presets import PRESETS, Preset, get_preset
from vq_tokenizers.tokenize import decode_shards, reconstruct_image, tokenize_shards, tokenizer_info
from vq_tokenizers.tokenize_ray import tokenize_shards_ray
from vq_tokenizers.train_job import TrainJob, build_run, train_tokenizer
from vq_tokenizers.vqgan import VQGAN, VQGANConfig
from vq_tokenizers.vqkd import VQKD, VQKDConfig
from vq_tokenizers.vqkd_training import VQKD_PRESETS, VQKDJob, VQKDTrainConfig, VQKDTrainer, train_vqkd

__version__ = "0.1.0"
