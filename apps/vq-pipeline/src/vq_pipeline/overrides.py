"""Check the free-form ``overrides``/``loss`` dicts of a pipeline config against the configs they feed.

``tokenizer.overrides``, ``tokenizer.train.overrides``, ``ar.overrides`` and the like are passed to a
trainer only when its stage starts, possibly hours into a run.  Here every key is looked up in the
pydantic config it will set (recursively for nested configs) and every value is validated against that
field's type and bounds, so ``vq-pipeline check`` (and ``run``, before anything starts) names the
dotted field of a typo or a bad value.  Cross-field rules are left to the config itself at run time.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from vq_pipeline.config import PipelineConfig, TrainSettings


def _adapter(field: FieldInfo) -> TypeAdapter[Any]:
    """Validates one value as the field would: its type plus its bounds (gt, min_length, ...)."""
    if not field.metadata:
        return TypeAdapter(field.annotation)
    return TypeAdapter(Annotated[(field.annotation, *field.metadata)])  # type: ignore[valid-type]


def _nested_model(field: FieldInfo) -> type[BaseModel] | None:
    annotation = field.annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def field_problems(values: dict[str, Any], model: type[BaseModel], prefix: str) -> list[str]:
    """One message per key of ``values`` that ``model`` lacks or per value its field refuses."""
    problems = []
    for key, value in values.items():
        name = f"{prefix}.{key}"
        field = model.model_fields.get(key)
        if field is None:
            known = ", ".join(sorted(model.model_fields))
            problems.append(f"{name}: unknown field of {model.__name__} (known: {known})")
            continue
        nested = _nested_model(field)
        if nested is not None and isinstance(value, dict):
            problems.extend(field_problems(value, nested, name))
            continue
        try:
            _adapter(field).validate_python(value)
        except ValidationError as err:
            problems.append(f"{name}: {err.errors()[0]['msg']} (got {value!r})")
    return problems


def _train_problems(train: TrainSettings, model: type[BaseModel], prefix: str) -> list[str]:
    return field_problems(train.overrides, model, f"{prefix}.overrides")


def override_problems(config: PipelineConfig) -> list[str]:
    """Every unknown field or bad value in the config's override dicts (empty: all valid).

    Presets that do not exist are :func:`vq_pipeline.presets.preset_problems`' to report; their
    overrides are skipped here.
    """
    from vq_ar import ARConfig
    from vq_ar import TrainConfig as ARTrainConfig
    from vq_tokenizers import PIXEL_DECODER_PRESETS, VQKD_PRESETS, ClusterJob, PixelDecoderConfig, VQKDConfig, get_preset, tokenizer_class

    problems: list[str] = []
    tok = config.tokenizer
    if tok.family == "cluster":
        problems += field_problems(tok.overrides, ClusterJob, "tokenizer.overrides")
    elif tok.family == "vqkd":
        problems += field_problems(tok.overrides, VQKDConfig, "tokenizer.overrides")
        preset = VQKD_PRESETS.get(tok.preset)
        if preset is not None:
            problems += _train_problems(tok.train, type(preset.train), "tokenizer.train")
    else:
        problems += field_problems(tok.overrides, tokenizer_class(tok.family).config_class, "tokenizer.overrides")
        try:
            preset = get_preset(tok.preset, tok.family)
        except KeyError:
            preset = None
        if preset is not None:
            problems += field_problems(tok.loss, type(preset.loss), "tokenizer.loss")
            problems += _train_problems(tok.train, type(preset.train), "tokenizer.train")
    decoder = tok.pixel_decoder
    if decoder is not None:
        problems += field_problems(decoder.overrides, PixelDecoderConfig, "tokenizer.pixel_decoder.overrides")
        spec = PIXEL_DECODER_PRESETS.get(decoder.preset)
        if spec is not None:
            problems += field_problems(decoder.loss, type(spec.loss), "tokenizer.pixel_decoder.loss")
            problems += _train_problems(decoder.train, type(spec.train), "tokenizer.pixel_decoder.train")
    problems += field_problems(config.ar.overrides, ARConfig, "ar.overrides")
    problems += _train_problems(config.ar.train, ARTrainConfig, "ar.train")
    return problems
