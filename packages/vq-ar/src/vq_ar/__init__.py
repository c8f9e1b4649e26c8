"""vq-ar: LlamaGen-style class-conditional AR model over image tokens — training, KV-cached CFG sampling, validation."""

from vq_core.lazy import lazy_exports

__version__ = "0.1.0"

__all__ = lazy_exports(
    __name__,
    {
        "vq_ar.checkpoint": ["LoadedAR", "load_ar", "save_ar"],
        "vq_ar.config": ["LLAMAGEN_PARAMS", "SIZES", "ARConfig", "ar_config"],
        "vq_ar.convert_llamagen": ["convert_llamagen", "infer_llamagen_config"],
        "vq_ar.data": ["BatchOrder", "TokenSet", "load_token_set"],
        "vq_ar.images": ["DecoderUnavailable", "decode_tokens", "image_grid", "load_pixel_decoder", "write_png"],
        "vq_ar.kv_cache": ["KVCache"],
        "vq_ar.gpt2": ["GPT2AR"],
        "vq_ar.model": ["ARTransformer", "build_ar_model", "count_parameters"],
        "vq_ar.presets": ["PRESETS", "ARPreset", "get_preset"],
        "vq_ar.rope": ["apply_rope", "rope_angles", "rope_table"],
        "vq_ar.sampling": ["SamplingConfig", "filter_top_k", "filter_top_p", "generate", "next_token_probs"],
        "vq_ar.training": ["TrainConfig", "TrainResult", "lr_factor", "token_loss", "train", "train_loop"],
        "vq_ar.validation": ["complete_half", "completion_match", "teacher_forced_metrics"],
    },
)
