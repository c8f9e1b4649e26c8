"""Quantizers with one interface: ``quantize(x) -> (z_q, indices, aux)``, ``dequantize(indices)``."""

from vq_core.quantizers.fsq import FSQ, FSQConfig
from vq_core.quantizers.lfq import LFQ, LFQConfig
from vq_core.quantizers.residual import ResidualVQ, ResidualVQConfig
from vq_core.quantizers.vector import VectorQuantizer, VectorQuantizerConfig

__all__ = ["FSQ", "FSQConfig", "LFQ", "LFQConfig", "ResidualVQ", "ResidualVQConfig", "VectorQuantizer", "VectorQuantizerConfig"]
