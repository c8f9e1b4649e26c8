"""Teachers load from locally saved weights and give exactly the features of the original models.

Tiny randomly initialised transformers models are saved with ``save_pretrained`` and loaded back
through ``load_teacher``; the reference is the transformers model itself, run on inputs normalised
here by hand (rescale to [0, 1], CLIP or ImageNet mean/std).  torchvision ViT features are checked
against a forward hook on the classifier's own encoder.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPVisionConfig,
    CLIPVisionModelWithProjection,
    Dinov2Config,
    Dinov2Model,
    ViTConfig,
    ViTModel,
)

from vq_tokenizers.teachers import (
    TeacherConfig,
    TeacherError,
    TorchvisionTeacher,
    build_teacher,
    load_teacher,
    resample_grid,
)

pytestmark = pytest.mark.usefixtures("single_thread")

CLIP_MEAN = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
CLIP_STD = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CLIPVisionModelWithProjection]:
    torch.manual_seed(1)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**TINY, intermediate_size=64, projection_dim=16)).eval()
    path = tmp_path_factory.mktemp("clip")
    model.save_pretrained(path)
    return path, model


def _clip_pixels(images: torch.Tensor) -> torch.Tensor:
    return ((images + 1) / 2 - CLIP_MEAN) / CLIP_STD


def test_clip_teacher_matches_transformers(clip_dir, images) -> None:
    path, reference = clip_dir
    teacher = load_teacher(f"clip:{path}")
    assert (teacher.grid, teacher.dim, teacher.image_size) == ((4, 4), 32, 32)
    with torch.no_grad():
        out = reference.vision_model(pixel_values=_clip_pixels(images), output_hidden_states=True)
    torch.testing.assert_close(teacher.features(images), out.last_hidden_state[:, 1:], rtol=1e-5, atol=1e-5)
    # BEiT v2's target: post-LayerNorm + visual projection of every patch token
    projected = load_teacher(f"clip-proj:{path}")
    expected = reference.visual_projection(reference.vision_model.post_layernorm(out.last_hidden_state[:, 1:]))
    assert projected.dim == 16
    torch.testing.assert_close(projected.features(images), expected, rtol=1e-5, atol=1e-5)
    # an intermediate layer
    layer1 = load_teacher(f"clip:{path}", layer=1)
    torch.testing.assert_close(layer1.features(images), out.hidden_states[1][:, 1:], rtol=1e-5, atol=1e-5)


def test_full_clip_model_directory_loads_its_vision_tower(tmp_path, images) -> None:
    """A saved ``CLIPModel`` (text + vision, projection width only at the top level of its config)."""
    torch.manual_seed(5)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, vocab_size=64),
        vision_config=dict(**TINY, intermediate_size=64), projection_dim=24,
    )
    model = CLIPModel(config).eval()
    model.save_pretrained(tmp_path)
    with torch.no_grad():
        hidden = model.vision_model(pixel_values=_clip_pixels(images)).last_hidden_state[:, 1:]
        projected = model.visual_projection(model.vision_model.post_layernorm(hidden))
    teacher = load_teacher(f"clip-proj:{tmp_path}")
    assert teacher.dim == 24
    torch.testing.assert_close(teacher.features(images), projected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(load_teacher(f"clip:{tmp_path}").features(images), hidden, rtol=1e-5, atol=1e-5)


def test_teacher_is_frozen_and_stays_in_eval(clip_dir) -> None:
    teacher = load_teacher(f"clip:{clip_dir[0]}")
    assert not any(p.requires_grad for p in teacher.parameters())
    teacher.train()
    assert not any(m.training for m in teacher.modules())


def test_vit_and_dinov2_teachers_match_transformers(tmp_path, images) -> None:
    torch.manual_seed(2)
    vit = ViTModel(ViTConfig(**TINY, intermediate_size=64), add_pooling_layer=False).eval()
    dino = Dinov2Model(Dinov2Config(**TINY)).eval()
    vit.save_pretrained(tmp_path / "vit")
    dino.save_pretrained(tmp_path / "dinov2")
    pixels = ((images + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():
        expected_vit = vit(pixel_values=pixels).last_hidden_state[:, 1:]
        expected_dino = dino(pixel_values=pixels).last_hidden_state[:, 1:]
    torch.testing.assert_close(load_teacher(f"dino:{tmp_path / 'vit'}").features(images), expected_vit, rtol=1e-5, atol=1e-5)
    dinov2 = load_teacher(f"dinov2:{tmp_path / 'dinov2'}", image_size=32)
    assert dinov2.grid == (4, 4)
    torch.testing.assert_close(dinov2.features(images), expected_dino, rtol=1e-5, atol=1e-5)


def test_teacher_resizes_inputs_to_its_own_size(clip_dir) -> None:
    teacher = load_teacher(f"clip:{clip_dir[0]}")
    big = torch.rand(2, 3, 64, 64) * 2 - 1
    small = torch.nn.functional.avg_pool2d(big, 2)  # a 2x box filter is what antialiased bicubic approximates
    features = teacher.features(big)
    assert features.shape == (2, 16, 32)
    cos = torch.nn.functional.cosine_similarity(features, teacher.features(small), dim=-1)
    assert cos.mean() > 0.9


def test_rebuilt_teacher_from_config_and_state_dict(clip_dir, images) -> None:
    teacher = load_teacher(f"clip-proj:{clip_dir[0]}")
    config = TeacherConfig.model_validate_json(teacher.config.model_dump_json())
    rebuilt = build_teacher(config)
    rebuilt.load_state_dict(teacher.state_dict())
    assert torch.equal(rebuilt.features(images), teacher.features(images))


def test_random_clip_is_seeded() -> None:
    a, b = load_teacher("random-clip:tiny"), load_teacher("random-clip:tiny")
    assert (a.grid, a.dim) == ((4, 4), 32)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_missing_weights_name_the_path(tmp_path) -> None:
    with pytest.raises(TeacherError, match=str(tmp_path / "nope")):
        load_teacher(f"clip:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(TeacherError, match="model.safetensors"):
        load_teacher(f"dino:{tmp_path / 'empty'}")
    with pytest.raises(TeacherError, match=r"vit_b_16-c867db91\.pth"):
        load_teacher(f"tv-vit_b_16:{tmp_path / 'vit.pth'}")
    with pytest.raises(ValueError, match="unknown teacher kind"):
        load_teacher("resnet:/x")


def test_torchvision_vit_features_match_encoder_hook(images) -> None:
    torch.manual_seed(3)
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64)
    config = TeacherConfig(kind="torchvision_vit", arch={"name": "vit_b_16"}, image_size=32)
    captured = {}
    vit.encoder.register_forward_hook(lambda m, i, o: captured.update(final=o))
    vit.encoder.layers[0].register_forward_hook(lambda m, i, o: captured.update(first=o))
    teacher = TorchvisionTeacher(config, vit)
    with torch.no_grad():
        vit(((images + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD)
    assert teacher.grid == (4, 4) and teacher.dim == 32
    torch.testing.assert_close(teacher.features(images), captured["final"][:, 1:], rtol=1e-5, atol=1e-5)
    first = TorchvisionTeacher(config.model_copy(update={"layer": 1}), vit)
    torch.testing.assert_close(first.features(images), captured["first"][:, 1:], rtol=1e-5, atol=1e-5)


def test_torchvision_convnext_loads_from_file(tmp_path) -> None:
    torch.manual_seed(4)
    reference = torchvision.models.convnext_tiny(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "convnext.pth")
    teacher = load_teacher(f"tv-convnext_tiny:{tmp_path / 'convnext.pth'}", image_size=64)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = reference.features(((x + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD)  # (1, 768, 2, 2)
    assert teacher.grid == (2, 2) and teacher.dim == 768
    torch.testing.assert_close(teacher.features(x), expected.flatten(2).transpose(1, 2), rtol=1e-4, atol=1e-4)


def test_resample_grid_is_identity_or_the_seeds_bicubic() -> None:
    features = torch.randn(2, 49, 5)
    assert resample_grid(features, (7, 7), (7, 7)) is features
    up = resample_grid(features, (7, 7), (14, 14))  # ConvNeXt's 7x7 map onto VQ-KD's 14x14 tokens
    # the seed's BaseTeacher: F.interpolate(x (B, C, h, w), output_wh, mode='bicubic')
    expected = torch.nn.functional.interpolate(features.transpose(1, 2).reshape(2, 5, 7, 7), (14, 14), mode="bicubic")
    torch.testing.assert_close(up, expected.flatten(2).transpose(1, 2))
    assert up.shape == (2, 196, 5)


def test_clip_ln_teacher_is_the_post_layernorm_without_projection(clip_dir, images) -> None:
    """The seed's Cluster CLIP encoder (``CLIPTeacher(with_proj=False)``): ``ln_post`` on every patch token."""
    path, reference = clip_dir
    teacher = load_teacher(f"clip-ln:{path}")
    with torch.no_grad():
        hidden = reference.vision_model(pixel_values=_clip_pixels(images)).last_hidden_state[:, 1:]
        ln = torch.nn.functional.layer_norm(
            hidden, (32,), reference.vision_model.post_layernorm.weight, reference.vision_model.post_layernorm.bias,
            reference.config.layer_norm_eps,
        )
    assert teacher.dim == 32 and teacher.config.post_norm and not teacher.config.project
    torch.testing.assert_close(teacher.features(images), ln, rtol=1e-5, atol=1e-5)
    rebuilt = build_teacher(teacher.config)
    rebuilt.load_state_dict(teacher.state_dict())
    torch.testing.assert_close(rebuilt.features(images), ln, rtol=1e-5, atol=1e-5)


def test_mae_teacher_sees_every_patch_in_order(tmp_path, images) -> None:
    """MAE ViT (transformers ViTMAEModel): no masking, no shuffling; features = the final LayerNorm output,
    checked against the same weights run as a plain ViT stack here (patch embedding + fixed sin-cos positions)."""
    from transformers import ViTMAEConfig, ViTMAEModel

    torch.manual_seed(3)
    reference = ViTMAEModel(ViTMAEConfig(**TINY, intermediate_size=64, mask_ratio=0.75)).eval()
    reference.save_pretrained(tmp_path / "mae")
    teacher = load_teacher(f"mae:{tmp_path / 'mae'}")
    assert (teacher.grid, teacher.dim, teacher.kind) == ((4, 4), 32, "mae")
    pixels = ((images + 1) / 2 - IMAGENET_MEAN) / IMAGENET_STD
    with torch.no_grad():  # independent of masking: embeddings by hand, then the encoder and the final norm
        emb = reference.embeddings
        tokens = emb.patch_embeddings(pixels) + emb.position_embeddings[:, 1:]
        cls = (emb.cls_token + emb.position_embeddings[:, :1]).expand(3, -1, -1)
        hidden = torch.cat([cls, tokens], dim=1)
        for layer in reference.layers:
            hidden = layer(hidden)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        expected = reference.layernorm(hidden)[:, 1:]
    torch.testing.assert_close(teacher.features(images), expected, rtol=1e-5, atol=1e-5)
    assert teacher.grid_at(64) == (8, 8) and teacher.features(torch.zeros(1, 3, 64, 64), 64).shape == (1, 64, 32)
