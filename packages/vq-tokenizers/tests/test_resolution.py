"""Tokenizing at another resolution than the one trained at (the seed: VQ-KD/Cluster at 224 px, tokens at 256 px).

References are independent of the code under test: the position-embedding interpolation is BEiT v2's
``F.interpolate`` call written out here, and a 224-px VQ-KD tokenizing 256-px images must give the
tokens of a VQ-KD *built* at 256 px whose position embeddings were set to that interpolation.
"""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from PIL import Image

from vq_tokenizers import VQKD, VQKDConfig, build_tokenizer, load_tokenizer, save_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.pixel_decoder import PixelDecoderTokenizer
from vq_tokenizers.training.pixel_decoder import pixel_decoder_shape
from vq_tokenizers.presets import get_preset
from vq_tokenizers.tokenize import tokenize_shards
from vq_tokenizers.vqkd import beit_quantizer

pytestmark = pytest.mark.usefixtures("single_thread")


def _vqkd_config(image_size: int) -> VQKDConfig:
    grid = image_size // 16
    return VQKDConfig.from_dict({
        "encoder": {"image_size": image_size, "patch_size": 16, "dim": 32, "depth": 1, "heads": 2},
        "decoder": {"image_size": grid, "patch_size": 1, "in_channels": 8, "dim": 32, "depth": 1, "heads": 2},
        "quantizer": beit_quantizer(64, 8),
        "target_dim": 16,
    })


@pytest.fixture(scope="module")
def vqkd_224() -> VQKD:
    torch.manual_seed(0)
    model = VQKD(_vqkd_config(224)).eval()
    model.quantizer.load_codebook(F.normalize(torch.randn(64, 8), dim=1))
    return model


def beit_interpolation(pos_embed: torch.Tensor, new: int) -> torch.Tensor:
    """BEiT v2 ``interpolate_pos_encoding``: class token apart, bicubic with scale (new + 0.1) / old."""
    old = int((pos_embed.shape[1] - 1) ** 0.5)
    dim = pos_embed.shape[-1]
    patch = pos_embed[:, 1:].reshape(1, old, old, dim).permute(0, 3, 1, 2)
    scale = (new + 0.1) / old
    patch = torch.nn.functional.interpolate(patch, scale_factor=(scale, scale), mode="bicubic")
    return torch.cat([pos_embed[:, :1], patch.permute(0, 2, 3, 1).reshape(1, new * new, dim)], dim=1)


def test_position_embeddings_are_interpolated_as_beit_v2_does(vqkd_224: VQKD) -> None:
    encoder = vqkd_224.encoder
    assert encoder.position_embeddings((14, 14)) is encoder.pos_embed
    with torch.no_grad():
        ours = encoder.position_embeddings((16, 16))
    assert ours.shape == (1, 1 + 256, 32)
    torch.testing.assert_close(ours, beit_interpolation(encoder.pos_embed.detach(), 16), rtol=0, atol=1e-6)
    assert torch.equal(ours[:, 0], encoder.pos_embed[:, 0])  # the class token's embedding is kept apart
    # the scale-factor form is what BEiT computes; the size=(16, 16) form would give other values
    size_form = F.interpolate(encoder.pos_embed[:, 1:].reshape(1, 14, 14, 32).permute(0, 3, 1, 2), size=(16, 16), mode="bicubic")
    assert (size_form.permute(0, 2, 3, 1).reshape(1, 256, 32) - ours[:, 1:]).abs().max() > 1e-4


def test_vqkd_built_at_224_tokenizes_256_px_to_16x16_like_a_model_built_at_256(vqkd_224: VQKD) -> None:
    images = torch.rand(3, 3, 256, 256) * 2 - 1
    assert vqkd_224.grid == (14, 14) and vqkd_224.grid_for(256) == (16, 16)
    tokens = vqkd_224.encode(images)
    assert tokens.shape == (3, 16, 16)
    native = VQKD(_vqkd_config(256)).eval()
    state = dict(vqkd_224.state_dict())
    state["encoder.pos_embed"] = beit_interpolation(state["encoder.pos_embed"], 16)
    state["decoder.pos_embed"] = beit_interpolation(state["decoder.pos_embed"], 16)
    native.load_state_dict(state)
    assert torch.equal(tokens, native.encode(images))
    torch.testing.assert_close(vqkd_224.decode_features(tokens), native.decode_features(tokens), rtol=1e-5, atol=1e-5)
    assert vqkd_224.encode(images[:, :, :224, :224]).shape == (3, 14, 14)
    with pytest.raises(ValueError, match="multiples of 16"):
        vqkd_224.encode(torch.zeros(1, 3, 250, 250))


def test_conv_tokenizers_take_any_multiple_of_their_downsampling_factor() -> None:
    preset = get_preset("tiny", family="vqgan")  # 32 px, f4
    torch.manual_seed(0)
    model = build_tokenizer("vqgan", preset.model).eval()
    images = torch.rand(2, 3, 48, 40) * 2 - 1
    tokens = model.encode(images)
    assert tokens.shape == (2, 12, 10) and model.decode(tokens).shape == (2, 3, 48, 40)
    with pytest.raises(ValueError, match="multiples of 4"):
        model.encode(torch.zeros(1, 3, 34, 32))


def test_cluster_fitted_at_its_teacher_size_tokenizes_larger_images_on_a_larger_grid() -> None:
    from vq_tokenizers.cluster import ClusterConfig, ClusterTokenizer
    from vq_tokenizers.teachers import load_teacher

    teacher = load_teacher("random-clip:tiny")  # 32 px, patch 8: 4x4
    model = ClusterTokenizer(ClusterConfig(teacher=teacher.config, codebook_size=16, image_size=32), teacher=teacher).eval()
    torch.manual_seed(0)
    model.load_codebook(torch.randn(16, teacher.dim))
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    tokens = model.encode(images)
    assert model.size_multiple == 8 and tokens.shape == (2, 8, 8)
    # independently: the teacher itself run at 64 px (HF's interpolate_pos_encoding), then the nearest centroid
    from transformers import CLIPVisionModel

    hf: CLIPVisionModel = teacher.model
    pixels = ((images + 1) / 2 - teacher.mean) / teacher.std
    with torch.no_grad():
        feats = hf(pixel_values=pixels, interpolate_pos_encoding=True).last_hidden_state[:, 1:]
    expected = (F.normalize(feats, dim=-1) @ model.codebook.T).argmax(-1).view(2, 8, 8)
    assert torch.equal(tokens, expected)


def _photo_folder(root, n: int = 5):
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (300, 280, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    return root


def test_tokenize_shards_at_256_with_a_224_model_records_the_grid_used(vqkd_224: VQKD, tmp_path) -> None:
    ckpt = save_tokenizer(vqkd_224, tmp_path / "vqkd.safetensors")
    (tmp_path / "photos").mkdir()
    photos = _photo_folder(tmp_path / "photos")
    manifest = tokenize_shards(ckpt, photos, tmp_path / "tokens", image_size=256, samples_per_shard=4, device="cpu")
    assert manifest.tokenizer.image_size == 256 and tuple(manifest.tokenizer.grid) == (16, 16)
    with tarfile.open(tmp_path / "tokens" / manifest.shards[0].name) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".tokens.npy"))
        grid = np.load(io.BytesIO(tar.extractfile(member).read()))
    assert grid.shape == (16, 16)
    on_disk = json.loads((tmp_path / "tokens" / "manifest.json").read_text())
    assert on_disk["tokenizer"]["image_size"] == 256 and on_disk["tokenizer"]["grid"] == [16, 16]
    cli = CliRunner().invoke(main, ["tokenize", str(photos), "--ckpt", str(ckpt), "--out", str(tmp_path / "t2"), "--image-size", "250"])
    assert cli.exit_code != 0 and "multiples of 16" in cli.output


def test_pixel_decoder_presets_decode_256_px_from_a_224_px_vqkd(vqkd_224: VQKD) -> None:
    shape = pixel_decoder_shape("vqgan", vqkd_224, {"ch": 32, "z_channels": 32})
    assert shape["image_size"] == 256 and len(shape["ch_mult"]) == 5 and shape["attn_resolutions"] == (16,)
    decoder = PixelDecoderTokenizer.from_source(vqkd_224, **shape).eval()
    assert decoder.grid == (16, 16) and decoder.image_size == 256
    tokens = decoder.encode(torch.rand(1, 3, 256, 256) * 2 - 1)
    assert tokens.shape == (1, 16, 16) and decoder.decode(tokens).shape == (1, 3, 256, 256)
    assert decoder.token_space_hash() == vqkd_224.token_space_hash()
