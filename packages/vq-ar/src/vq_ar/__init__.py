"""vq-ar: LlamaGen-style class-conditional AR model over image tokens — training, KV-cached CFG sampling, validation."""

from vq_ar.checkpoint import LoadedAR, load_ar, save_ar
from vq_ar.config import LLAMAGEN_PARAMS, SIZES, ARConfig, ar_config
from vq_ar.convert_llamagen import convert_llamagen, infer_llamagen_config
from vq_ar.data import BatchOrder, TokenSet, load_token_set
from vq_ar.images import DecoderUnavailable, decode_tokens, image_grid, load_pixel_decoder, write_png
from vq_ar.kv_cache import KVCache
from vq_ar.gpt2 import GPT2AR
from vq_ar.model import ARTransformer, build_ar_model, count_parameters
from vq_ar.presets import PRESETS, ARPreset, get_preset
from vq_ar.rope import apply_rope, rope_angles, rope_table
from vq_ar.sampling import SamplingConfig, filter_top_k, filter_top_p, generate, next_token_probs
from vq_ar.training import TrainConfig, TrainResult, lr_factor, token_loss, train, train_loop
from vq_ar.validation import complete_half, completion_match, teacher_forced_metrics

__version__ = "0.1.0"
