"""Pixel decoders on frozen VQ-KD / Cluster tokens: same token space, training lowers the reconstruction
error while the source stays untouched, checkpoints round-trip, token shards are interchangeable."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from vq_core import ConfigError, ManifestError
from vq_tokenizers import PixelDecoderTokenizer, VQKD, load_tokenizer, save_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.cluster import ClusterConfig, ClusterTokenizer, SourceBatches
from vq_tokenizers.training.pixel_decoder import fit_ch_mult, pixel_decoder_shape, train_pixel_decoder
from vq_tokenizers.teachers import load_teacher
from vq_tokenizers.tokenize import decode_shards, tokenize_shards
from vq_tokenizers.training.vqkd import vqkd_config_for


pytestmark = pytest.mark.usefixtures("single_thread")
TINY_DECODER = {"ch": 32, "ch_mult": (1, 1, 2, 2), "num_res_blocks": 1, "z_channels": 32, "attn_resolutions": (4,)}


@pytest.fixture(scope="module")
def vqkd_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = VQKD(vqkd_config_for("tiny", load_teacher("random-clip:tiny"))).eval()
    return save_tokenizer(model, tmp_path_factory.mktemp("vqkd") / "vqkd.safetensors")


def test_pixel_decoder_shares_the_source_token_space(vqkd_ckpt) -> None:
    source = load_tokenizer(vqkd_ckpt)
    model = PixelDecoderTokenizer.from_source(source, **TINY_DECODER)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    assert model.token_space_hash() == source.token_space_hash()
    assert (model.codebook_size, model.grid, model.image_size) == (source.codebook_size, source.grid, source.image_size)
    assert torch.equal(model.encode(images), source.encode(images))
    assert model.can_decode and model.decode(model.encode(images)).shape == (3, 3, 32, 32)
    # the codebook embedding is the source's code vector, projected by a 1x1 conv
    tokens = model.encode(images)
    expected = torch.nn.functional.conv2d(source.dequantize(tokens), model.embed_proj.weight, model.embed_proj.bias)
    torch.testing.assert_close(model.embed_tokens(tokens), expected)


def test_decoder_levels_must_match_the_grid(vqkd_ckpt) -> None:
    source = load_tokenizer(vqkd_ckpt)
    with pytest.raises(ConfigError, match="use 4 ch_mult entries"):
        PixelDecoderTokenizer.from_source(source, **{**TINY_DECODER, "ch_mult": (1, 2, 2)})
    assert fit_ch_mult((1, 1, 2, 2, 4), 4) == (1, 2, 2, 4)
    assert fit_ch_mult((1, 2), 4) == (1, 1, 1, 2)
    shape = pixel_decoder_shape("vqgan", source, {"image_size": 32})
    assert shape["ch_mult"] == (1, 2, 2, 4) and shape["attn_resolutions"] == (4,)
    shape = pixel_decoder_shape("vqgan", source)  # the seed's presets decode 256 px: 32x32 tokens of this patch-8 model
    assert shape["image_size"] == 256 and shape["ch_mult"] == (1, 2, 2, 4) and shape["attn_resolutions"] == (32,)


@torch.no_grad()
def _l1(model: PixelDecoderTokenizer, images: torch.Tensor) -> float:
    return float((model.decode(model.encode(images)) - images).abs().mean())


def test_training_lowers_reconstruction_error_and_keeps_the_source(vqkd_ckpt, teacher_photos, tmp_path, recording_session) -> None:
    source_state = load_tokenizer(vqkd_ckpt).state_dict()
    torch.manual_seed(0)
    untrained = PixelDecoderTokenizer.from_source(load_tokenizer(vqkd_ckpt), **TINY_DECODER).eval()
    images = next(iter(SourceBatches(teacher_photos, image_size=32, batch_size=16)))
    before = _l1(untrained, images)
    mean_image = float((images - images.mean(dim=(0, 2, 3), keepdim=True)).abs().mean())  # a decoder ignoring tokens
    job = {
        "tokenizer": str(vqkd_ckpt), "data": str(teacher_photos), "out": str(tmp_path / "run"), "preset": "tiny",
        "loss": {"gan_weight": 0.0}, "train": {"steps": 80, "batch_size": 4, "lr": 1e-3, "log_every": 40, "ckpt_every": 40},
    }
    session = recording_session
    metrics = train_pixel_decoder(job, session)
    trained = load_tokenizer(tmp_path / "run" / "tokenizer.safetensors")
    assert isinstance(trained, PixelDecoderTokenizer) and metrics["step"] == 80
    after = _l1(trained, images)
    assert after < 0.7 * before and after < mean_image, (before, after, mean_image)
    # the source was frozen: identical weights, identical tokens, identical token space
    assert all(torch.equal(v, trained.source.state_dict()[k]) for k, v in source_state.items())
    assert trained.token_space_hash() == load_tokenizer(vqkd_ckpt).token_space_hash()
    # launched as a vq_core.launch loop: metrics and each checkpoint (in a directory of its own) were reported
    assert [m["step"] for m, _ in session.reports] == [40, 80]
    assert all(files == [f"step_{int(m['step']):08d}.safetensors"] for m, files in session.reports)


def test_token_shards_are_interchangeable(vqkd_ckpt, teacher_photos, tmp_path) -> None:
    pixel = PixelDecoderTokenizer.from_source(load_tokenizer(vqkd_ckpt), **TINY_DECODER)
    pixel_ckpt = save_tokenizer(pixel, tmp_path / "pixel.safetensors")
    from_source = tokenize_shards(vqkd_ckpt, teacher_photos, tmp_path / "a", samples_per_shard=16, batch_size=8)
    from_pixel = tokenize_shards(pixel_ckpt, teacher_photos, tmp_path / "b", samples_per_shard=16, batch_size=8)
    assert from_source.tokenizer.config_hash == from_pixel.tokenizer.config_hash
    assert [s.sha256 for s in from_source.shards] == [s.sha256 for s in from_pixel.shards]
    written = decode_shards(tmp_path / "a", pixel_ckpt, tmp_path / "png", limit=3)
    assert len(written) == 3 and all(p.is_file() for p in written)
    # a decoder over another VQ-KD (other weights, same config) refuses these shards
    torch.manual_seed(1)
    other = VQKD(load_tokenizer(vqkd_ckpt).config).eval()
    other_pixel = save_tokenizer(PixelDecoderTokenizer.from_source(other, **TINY_DECODER), tmp_path / "other.safetensors")
    with pytest.raises(ManifestError, match="has token space .* but the shards of .*manifest.json were made by vqkd tokenizer"):
        decode_shards(tmp_path / "a", other_pixel, tmp_path / "png2")


def test_learned_embedding_and_cluster_source() -> None:
    teacher = load_teacher("random-clip:tiny")
    cluster = ClusterTokenizer(ClusterConfig(teacher=teacher.config, codebook_size=8, image_size=32), teacher=teacher)
    cluster.load_codebook(torch.randn(8, teacher.dim))
    learned = PixelDecoderTokenizer.from_source(cluster, **TINY_DECODER, embedding="learned", embed_dim=16)
    codebook = PixelDecoderTokenizer.from_source(cluster, **TINY_DECODER)
    assert learned.embed.weight.shape == (8, 16) and codebook.embed_proj.in_channels == teacher.dim
    tokens = torch.randint(0, 8, (2, 4, 4))
    assert learned.decode(tokens).shape == codebook.decode(tokens).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match=r"\[0, 8\)"):
        learned.decode(torch.full((1, 4, 4), 8))


def test_cli_train_pixel_decoder(vqkd_ckpt, teacher_photos, tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        ["train-pixel-decoder", "--tokenizer", str(vqkd_ckpt), "--data", str(teacher_photos), "--out", str(tmp_path),
         "--steps", "2", "--batch-size", "4", "--set", "ch=32", "--loss-set", "gan_weight=0"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["step"] == 2
    assert load_tokenizer(tmp_path / "tokenizer.safetensors").family == "pixel"
