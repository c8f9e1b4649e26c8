"""Training of the conv tokenizers: the loop (single process or DDP), its config, weight EMA, data stream."""

from vq_tokenizers.training.checkpoints import FINAL_NAME, latest_checkpoint
from vq_tokenizers.training.config import TrainConfig
from vq_tokenizers.training.data import ImageBatches
from vq_tokenizers.training.ema import WeightEMA
from vq_tokenizers.training.trainer import NonFiniteLossError, Trainer

__all__ = [
    "FINAL_NAME",
    "ImageBatches",
    "NonFiniteLossError",
    "TrainConfig",
    "Trainer",
    "WeightEMA",
    "latest_checkpoint",
]
