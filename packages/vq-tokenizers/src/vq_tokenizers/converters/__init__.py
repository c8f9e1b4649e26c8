"""Converters of published tokenizer checkpoints into vq checkpoints (``vq-tok convert ...``)."""

from vq_tokenizers.converters.beit import beit_state_to_vqkd, convert_beit
from vq_tokenizers.converters.llamagen import convert_llamagen, llamagen_state_to_vqgan
from vq_tokenizers.converters.taming import convert_taming, taming_state_to_vqgan

__all__ = [
    "beit_state_to_vqkd",
    "convert_beit",
    "convert_llamagen",
    "convert_taming",
    "llamagen_state_to_vqgan",
    "taming_state_to_vqgan",
]
