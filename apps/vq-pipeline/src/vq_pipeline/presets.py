"""Check that every named preset a pipeline config uses exists, before hours of earlier stages run."""

from __future__ import annotations

from vq_pipeline.config import PipelineConfig


def preset_problems(config: PipelineConfig) -> list[str]:
    """One message per unknown tokenizer / VQ-KD / pixel-decoder preset or AR size (empty: all known)."""
    from vq_ar import SIZES
    from vq_tokenizers import PIXEL_DECODER_PRESETS, VQKD_PRESETS, get_preset

    problems: list[str] = []
    tok = config.tokenizer
    if tok.checkpoint is None:
        if tok.family == "vqkd":
            preset = VQKD_PRESETS.get(tok.preset)
            if preset is None:
                problems.append(f"tokenizer.preset {tok.preset!r} is no VQ-KD preset; known: {sorted(VQKD_PRESETS)}")
            elif tok.teacher is not None and tok.teacher.partition(":")[0] != preset.teacher:
                problems.append(f"tokenizer.teacher {tok.teacher!r}: VQ-KD preset {tok.preset!r} distils a {preset.teacher!r} teacher")
        elif tok.family != "cluster":
            try:
                get_preset(tok.preset, tok.family)
            except KeyError as err:
                problems.append(f"tokenizer.preset: {err.args[0]}")
    if tok.pixel_decoder is not None and tok.pixel_decoder.preset not in PIXEL_DECODER_PRESETS:
        problems.append(f"tokenizer.pixel_decoder.preset {tok.pixel_decoder.preset!r} is unknown; known: {sorted(PIXEL_DECODER_PRESETS)}")
    if config.ar.size not in SIZES:
        problems.append(f"ar.size {config.ar.size!r} is unknown; known: {list(SIZES)}")
    if config.ar.preset is not None:
        from vq_ar.presets import PRESETS as AR_PRESETS

        if config.ar.preset not in AR_PRESETS:
            problems.append(f"ar.preset {config.ar.preset!r} is unknown; known: {sorted(AR_PRESETS)}")
    return problems
