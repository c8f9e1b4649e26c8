"""Teachers named by hub id (``clip:openai/clip-vit-base-patch16``) load from the local Hugging Face cache, never
downloaded; an id missing from the cache gets the not-a-directory error, naming the cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from vq_tokenizers.teachers import TeacherError, load_teacher
from vq_tokenizers.teachers.base import CLIP_MEAN, CLIP_STD

REPO = "openai/clip-vit-base-patch16"
COMMIT = "57c216476eefef5ab752ec549e440a49ae4ae5f3"


@pytest.fixture
def hf_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even online, a teacher id is looked up in the cache only
    return tmp_path / "hf"


def _cache_tiny_clip(hf_home: Path, tmp_path: Path) -> CLIPVisionModelWithProjection:
    """A tiny random CLIP vision tower in huggingface_hub's cache layout under the id of the real one."""
    torch.manual_seed(2)
    config = CLIPVisionConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8,
                              intermediate_size=64, projection_dim=16)  # fmt: skip
    model = CLIPVisionModelWithProjection(config).eval()
    model.save_pretrained(tmp_path / "saved")
    repo = hf_home / "hub" / f"models--{REPO.replace('/', '--')}"
    shutil.copytree(tmp_path / "saved", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return model


def test_hub_id_teacher_loads_from_the_cache(hf_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reference = _cache_tiny_clip(hf_home, tmp_path)
    import huggingface_hub.file_download

    def no_network(*args, **kwargs):
        raise AssertionError("a teacher hub id reached the network")

    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", no_network)
    monkeypatch.setattr(huggingface_hub.file_download, "get_hf_file_metadata", no_network)
    teacher = load_teacher(f"clip:{REPO}")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (CLIP_MEAN, CLIP_STD))
    pixels = ((images + 1) / 2 - mean) / std
    with torch.no_grad():
        expected = reference.vision_model(pixel_values=pixels).last_hidden_state[:, 1:]
        got = teacher.features(images, 32)
    assert torch.allclose(got, expected, atol=1e-5)
    assert teacher.config.source == REPO


def test_hub_id_absent_from_the_cache_is_the_not_a_directory_error(hf_home: Path) -> None:
    with pytest.raises(TeacherError, match=rf"{REPO} is not a directory \(nor is .* in the Hugging Face cache .*hf.hub"):
        load_teacher(f"clip:{REPO}")
