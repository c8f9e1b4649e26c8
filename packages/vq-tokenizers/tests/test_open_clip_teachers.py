"""OpenCLIP / EVA02-CLIP teachers on tiny random open_clip models built by open_clip's own factory from
custom model configs and saved in open_clip's local-dir layout (open_clip_config.json + weights).

The reference is open_clip itself: ``create_model('local-dir:DIR')`` loads the same folder, and the
features are read as the seed's ``OpenCLIPTeacher`` reads them (``visual.pool_type = 'none'``,
``encode_image``, class token dropped) or, for EVA02, as the timm trunk's patch tokens.
"""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from vq_tokenizers.teachers import TeacherError, build_teacher, load_open_clip_teacher, load_teacher

pytestmark = pytest.mark.usefixtures("single_thread")

TEXT = {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1}
TINY_VIT = {"embed_dim": 24, "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16}, "text_cfg": TEXT}
TINY_EVA = {
    "embed_dim": 24, "custom_text": True, "text_cfg": TEXT,
    "vision_cfg": {"image_size": 224, "timm_model_name": "eva02_tiny_patch14_224", "timm_model_pretrained": False,
                   "timm_pool": "token", "timm_proj": None},
}
MEAN_STD = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def _save_open_clip_dir(tmp_path, name: str, model_cfg: dict) -> tuple[torch.nn.Module, object]:
    """open_clip builds a random model from the custom config; saved as a local-dir (HF hub) folder."""
    config_file = tmp_path / f"{name}.json"
    config_file.write_text(json.dumps(model_cfg))
    open_clip.add_model_config(config_file)
    torch.manual_seed(0)
    model = open_clip.create_model(name)
    with torch.no_grad():  # non-trivial biases and norms
        for param in model.visual.parameters():
            param.add_(0.05 * torch.randn_like(param))
    folder = tmp_path / name
    folder.mkdir()
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": model_cfg, "preprocess_cfg": MEAN_STD}))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")
    return model, folder


def _reference_pixels(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) / 2 - 0.5) / 0.5  # [-1, 1] -> open_clip's normalisation of preprocess_cfg


def test_openclip_teacher_reads_tokens_as_the_seed_through_open_clips_loader(tmp_path) -> None:
    model, folder = _save_open_clip_dir(tmp_path, "vq-test-tiny-vit", TINY_VIT)
    teacher = load_teacher(f"openclip:{folder}")
    assert (teacher.dim, teacher.grid, teacher.stride) == (24, (4, 4), 8)  # projected width, 32 px / 8
    assert teacher.config.mean == (0.5, 0.5, 0.5) and teacher.config.std == (0.5, 0.5, 0.5)

    reference = open_clip.create_model(f"local-dir:{folder}").eval()
    reference.visual.pool_type = "none"  # the seed's OpenCLIPTeacher
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        expected = reference.encode_image(_reference_pixels(images))[:, 1:]
    torch.testing.assert_close(teacher.features(images), expected, rtol=1e-5, atol=1e-5)

    torch.save(model.state_dict(), tmp_path / "weights.bin")  # NAME@FILE: a built-in name and a release file
    by_file = load_teacher(f"openclip:vq-test-tiny-vit@{tmp_path / 'weights.bin'}")
    torch.testing.assert_close(by_file.forward_features(_reference_pixels(images)), expected, rtol=1e-5, atol=1e-5)

    rebuilt = build_teacher(teacher.config)  # a Cluster checkpoint rebuilds its teacher from the config
    rebuilt.load_state_dict(teacher.state_dict())
    torch.testing.assert_close(rebuilt.features(images), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="runs at 32 px only"):
        teacher.grid_at(64)


def test_evaclip_teacher_reads_the_eva02_trunks_patch_tokens(tmp_path) -> None:
    _, folder = _save_open_clip_dir(tmp_path, "vq-test-tiny-eva", TINY_EVA)
    teacher = load_teacher(f"evaclip:{folder}")
    assert (teacher.dim, teacher.grid) == (192, (16, 16))  # trunk width without the head, 224 / 14
    reference = open_clip.create_model(f"local-dir:{folder}").eval()
    images = torch.rand(1, 3, 224, 224) * 2 - 1
    with torch.no_grad():
        trunk = reference.visual.trunk
        expected = trunk.forward_features(_reference_pixels(images))[:, trunk.num_prefix_tokens:]
    torch.testing.assert_close(teacher.features(images), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(TeacherError, match="not an open_clip VisionTransformer; use evaclip"):
        load_teacher(f"openclip:{folder}")


def test_pretrained_tags_come_from_the_cache_only(tmp_path) -> None:
    with pytest.raises(TeacherError, match=r"not in the Hugging Face cache.*huggingface-cli download laion/CLIP-ViT-L-14-laion2B-s32B-b82K"):
        load_open_clip_teacher("openclip", "ViT-L-14:laion2b_s32b_b82k", cache_dir=str(tmp_path))
    with pytest.raises(TeacherError, match="does not exist"):
        load_teacher(f"openclip:ViT-L-14@{tmp_path / 'missing.bin'}")
    with pytest.raises(TeacherError, match="no pretrained tag"):
        load_teacher("openclip:ViT-L-14:no_such_tag")
