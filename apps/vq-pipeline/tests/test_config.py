"""Pipeline configs: the shipped YAML files parse, name only existing presets, and bad ones fail clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from vq_core import ConfigError
from vq_pipeline.config import PipelineConfig, load_config
from vq_pipeline.presets import preset_problems

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_demo_config_is_the_cpu_demo() -> None:
    config = load_config(CONFIGS / "demo.yaml")
    assert preset_problems(config) == []
    assert config.data.source == "bundled" and config.data.image_size == 32
    assert config.ray.address is None  # in-process: the demo runs on a laptop CPU


def test_imagenet_config_is_full_scale_vqkd_clip_on_ray() -> None:
    config = load_config(CONFIGS / "imagenet_vqkd_clip.yaml")
    assert preset_problems(config) == []
    assert (config.data.source, config.data.split, config.data.eval_split) == ("imagenet", "train", "val")
    tok = config.tokenizer
    assert (tok.family, tok.preset) == ("vqkd", "vqkd_clip_8192")
    assert tok.teacher.startswith("clip-proj:") and tok.pixel_decoder is not None
    assert config.ar.size == "L" and config.sample.cfg_scale == 1.75
    assert (config.ray.address, config.ray.num_workers, config.ray.use_gpu) == ("auto", 8, True)


FULL_SCALE = ["llamagen_vq16_gpt_l.yaml", "seed_cluster_clip_8192.yaml", "seed_vqgan_16384_dd2.yaml", "seed_vqkd_clip_8192.yaml"]


def test_every_shipped_config_is_checked() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(["demo.yaml", "digits.yaml", "imagenet_vqkd_clip.yaml", *FULL_SCALE])


@pytest.mark.parametrize("name", FULL_SCALE)
def test_full_scale_configs_run_at_256_px_with_published_recipes(name: str) -> None:
    """The paper rows (VQGAN 16384 dd2, VQ-KD CLIP 8192, Cluster CLIP 8192) with the seed's AR recipe, and LlamaGen's."""
    config = load_config(CONFIGS / name)
    assert preset_problems(config) == []
    assert config.data.image_size == 256 and config.sample.per_class == 50 and config.sample.cfg_scale == 1.75
    tok = config.tokenizer
    if name == "llamagen_vq16_gpt_l.yaml":
        assert (tok.preset, config.ar.preset, config.tokenize.ten_crop) == ("llamagen_vq16", "llamagen_gpt_l", True)
        return
    assert config.ar.preset == "c2i_llama_medium_cfg" and (config.sample.top_k, config.sample.top_p) == (600, 0.92)
    assert (config.ar.train.steps, config.ar.train.batch_size) == (260_000, 96)
    assert config.tokenize.image_size == 256  # 16x16 tokens, also from the 224-px ViT tokenizers
    if tok.family in ("vqkd", "cluster"):
        assert tok.pixel_decoder is not None and tok.pixel_decoder.preset == "llamagen"
    expected = {
        "seed_vqgan_16384_dd2.yaml": ("vqgan", "vqgan_f16_16384_dd2_aglwg075", None),
        "seed_vqkd_clip_8192.yaml": ("vqkd", "vqkd_clip_8192", "clip-proj"),
        "seed_cluster_clip_8192.yaml": ("cluster", "tiny", "clip-ln"),
    }[name]
    assert (tok.family, tok.preset, tok.teacher and tok.teacher.partition(":")[0]) == expected
    if tok.family == "cluster":
        assert tok.overrides == {"k": 8192, "image_size": 256, "teacher_size": 256, "batch_size": 256}


def test_unknown_ar_preset_is_reported() -> None:
    problems = preset_problems(PipelineConfig.from_dict({"ar": {"preset": "c2i_huge"}}))
    assert len(problems) == 1 and "ar.preset 'c2i_huge'" in problems[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"tokenizer": {"family": "cvq", "preset": "cvq_f16_1234"}}, "no preset 'cvq_f16_1234'"),
        ({"tokenizer": {"family": "vqkd", "preset": "vqkd_dino", "teacher": "clip-proj:x", "pixel_decoder": {}}}, "no VQ-KD preset"),
        ({"tokenizer": {"family": "vqkd", "preset": "vqkd_clip_8192", "teacher": "dino:x", "pixel_decoder": {}}}, "distils a 'clip-proj' teacher"),
        ({"tokenizer": {"family": "vqkd", "preset": "tiny", "teacher": "random-clip:tiny", "pixel_decoder": {"preset": "huge"}}}, "pixel_decoder.preset 'huge'"),
        ({"ar": {"size": "medium"}}, "ar.size 'medium'"),
    ],
)
def test_unknown_preset_names_are_reported(change: dict, message: str) -> None:
    problems = preset_problems(PipelineConfig.from_dict(change))
    assert len(problems) == 1 and message in problems[0]


def test_teacher_families_need_a_teacher_and_a_pixel_decoder(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("tokenizer:\n  family: vqkd\n  teacher: random-clip:tiny\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*pixel_decoder"):
        load_config(path)
    path.write_text("tokenizer:\n  family: cluster\n  pixel_decoder: {}\n")
    with pytest.raises(ConfigError, match="tokenizer.teacher"):
        load_config(path)


def test_unknown_fields_name_the_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("ar:\n  sise: tiny\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml.*ar\.sise"):
        load_config(path)


def test_overrides_replace_config_values() -> None:
    config = load_config(CONFIGS / "imagenet_vqkd_clip.yaml", overrides={"ray": {"num_workers": 2, "address": "local"}})
    assert (config.ray.address, config.ray.num_workers, config.ray.use_gpu) == ("local", 2, True)
