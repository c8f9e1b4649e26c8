"""vq-tokenizers: VQGAN, CVQ-VAE, FSQ, VQ-KD and Cluster tokenizers, pixel decoders, converters."""

from vq_tokenizers.base import (
    Tokenizer,
    build_tokenizer,
    load_tokenizer,
    register_tokenizer,
    save_tokenizer,
    tokenizer_class,
)

__version__ = "0.1.0"
