"""VQGAN / CVQ-VAE / FSQ models: preset structure against the published architecture, shapes, bad input,
checkpoint round trips."""

from __future__ import annotations

import pytest
import torch

from vq_core import CheckpointError, ConfigError, save_checkpoint
from vq_tokenizers import PRESETS, build_tokenizer, get_preset, load_tokenizer, save_tokenizer, tokenizer_class
from vq_tokenizers.nn import AttnBlock, Decoder, Encoder, ResBlock

pytestmark = pytest.mark.usefixtures("single_thread")


def _tiny(family: str, **model_overrides):
    preset = get_preset("tiny", family)
    torch.manual_seed(0)
    return build_tokenizer(family, {**preset.model, **model_overrides})


def _count(module: torch.nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


@pytest.mark.parametrize("key", sorted(PRESETS), ids=lambda k: "/".join(k))
def test_every_preset_builds_on_meta_with_the_right_token_grid(key):
    family, name = key
    preset = PRESETS[key]
    cls = tokenizer_class(family)
    with torch.device("meta"):
        model = cls(cls.config_class.from_dict(preset.model)).eval()  # eval: no codebook updates on meta tensors
        out = model(torch.empty(2, 3, model.image_size, model.image_size))
    h, w = model.grid
    assert model.image_size // h == model.config.downsample_factor
    assert tuple(out.indices.shape) == (2, h, w)
    assert tuple(out.recon.shape) == (2, 3, model.image_size, model.image_size)
    assert preset.train.micro_batch_size(1) == preset.train.batch_size


def test_f16_architecture_matches_taming_and_llamagen_published_layout():
    """taming f16 / LlamaGen VQ-16: 5 levels (4 downsamplings), 2 res blocks per encoder level and 3 per
    decoder level, attention only at 16x16 (2 in the encoder level, 3 in the decoder level) plus one in
    each middle block, ~72M parameters (LlamaGen reports 72M for VQ-16)."""
    with torch.device("meta"):
        model = build_tokenizer("vqgan", get_preset("llamagen_vq16").model)
    enc, dec = model.encoder, model.decoder
    assert [len(level.res) for level in enc.down] == [2] * 5 and [len(level.res) for level in dec.up] == [3] * 5
    assert [len(level.attn) for level in enc.down] == [0, 0, 0, 0, 2]
    assert [len(level.attn) for level in dec.up] == [3, 0, 0, 0, 0]
    assert _count(enc, AttnBlock) == 3 and _count(dec, AttnBlock) == 4
    assert _count(enc, ResBlock) == 12 and _count(dec, ResBlock) == 17
    assert [level.res[0].conv1.out_channels for level in enc.down] == [128, 128, 256, 256, 512]
    assert [level.res[0].conv1.out_channels for level in dec.up] == [512, 256, 256, 128, 128]
    assert model.quant_conv.out_channels == 8 and model.config.quantizer.distance == "cosine"
    params = sum(p.numel() for p in model.parameters())
    assert 71.5e6 < params < 72.5e6, params
    with torch.device("meta"):
        taming = sum(p.numel() for p in build_tokenizer("vqgan", get_preset("vqgan_f16_1024").model).parameters())
    # encoder 29.30M + decoder 42.45M + two 256x256 1x1 convs + 1024x256 codebook
    assert taming == 29_298_176 + 42_449_795 + 2 * (256 * 256 + 256) + 1024 * 256


def test_published_loss_and_schedule_settings():
    dd2 = get_preset("vqgan_f16_8192_dd2_aglwg075")
    assert (dd2.loss.disc_layers, dd2.loss.adaptive_gain) == (2, 0.75)
    assert get_preset("vqgan_f16_8192").loss.disc_layers == 3 and get_preset("vqgan_f16_8192").loss.adaptive_gain == 0.8
    assert (dd2.train.lr, dd2.train.disc_lr, dd2.train.betas, dd2.train.batch_size) == (5.4e-5, 4.32e-4, (0.5, 0.9), 96)
    llama = get_preset("llamagen_vq16")
    assert (llama.loss.l1_weight, llama.loss.l2_weight, llama.loss.gan_weight, llama.loss.adaptive_gain) == (0, 1, 0.5, None)
    assert (llama.train.disc_start, llama.train.grad_clip, llama.train.betas) == (20_000, 1.0, (0.9, 0.95))
    assert get_preset("fsq_f16_64000").model["quantizer"]["levels"] == (8, 8, 8, 5, 5, 5)
    cvq = get_preset("cvq_f16_8192_dd2_aglwg075")
    assert cvq.model["quantizer"]["distance"] == "cosine" and cvq.loss == dd2.loss


@pytest.mark.parametrize("family", ["vqgan", "cvq", "fsq"])
def test_tiny_forward_encode_decode_shapes(family):
    model = _tiny(family).eval()
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    out = model(images)
    assert out.recon.shape == images.shape and out.indices.shape == (3, 8, 8) and out.quant_loss.ndim == 0
    tokens = model.encode(images)
    assert tokens.dtype == torch.int64 and int(tokens.max()) < model.codebook_size
    torch.testing.assert_close(tokens, out.indices)
    torch.testing.assert_close(model.decode(tokens), out.recon, rtol=1e-4, atol=1e-4)


def test_wrong_inputs_are_refused_with_both_shapes():
    model = _tiny("vqgan")
    with pytest.raises(ValueError, match="multiples of 4 .*got 66x64"):
        model.encode(torch.zeros(1, 3, 66, 64))
    with pytest.raises(ValueError, match=r"expected images \(B, 3, H, W\)"):
        model.encode(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 256\)"):
        model.decode(torch.full((1, 8, 8), 256))
    with pytest.raises(ValueError, match=r"expected token grids \(B, h, w\)"):
        model.decode(torch.zeros(16, dtype=torch.long))
    with pytest.raises(ValueError, match=r"flat tokens \(B, 5\) fit no square grid"):
        model.decode(torch.zeros(2, 5, dtype=torch.long))


def test_bad_configs_name_the_field():
    with pytest.raises(ConfigError, match="downsample factor"):
        build_tokenizer("vqgan", {**get_preset("tiny", "vqgan").model, "image_size": 30})
    with pytest.raises(ConfigError, match="GroupNorm"):
        build_tokenizer("vqgan", {**get_preset("tiny", "vqgan").model, "ch": 24})
    l2 = {**get_preset("tiny", "vqgan").model}
    with pytest.raises(ConfigError, match="cvq tokenizer needs quantizer.distance='cosine'"):
        build_tokenizer("cvq", l2)


@pytest.mark.parametrize("family", ["vqgan", "cvq", "fsq"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, family):
    model = _tiny(family).eval()
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    path = save_tokenizer(model, tmp_path / "m.safetensors")
    loaded = load_tokenizer(path)
    assert type(loaded) is type(model) and loaded.token_space_hash() == model.token_space_hash()
    assert torch.equal(loaded.encode(images), model.encode(images))
    assert torch.equal(loaded(images).recon, model(images).recon)


def test_checkpoint_that_does_not_fit_its_config_is_refused(tmp_path):
    model = _tiny("vqgan")
    other = build_tokenizer("vqgan", {**get_preset("tiny", "vqgan").model, "ch": 64})
    save_checkpoint(tmp_path / "bad.safetensors", family="vqgan", config=other.config, model=model.state_dict())
    with pytest.raises(CheckpointError, match="does not fit its vqgan config"):
        load_tokenizer(tmp_path / "bad.safetensors")


def test_attention_block_is_softmax_attention_over_positions():
    torch.manual_seed(0)
    block = AttnBlock(32)
    x = torch.randn(2, 32, 4, 5)
    h = block.norm(x)
    q, k, v = block.qkv(h).flatten(2).chunk(3, dim=1)  # (b, c, n) each
    weights = torch.softmax(q.transpose(1, 2) @ k / 32**0.5, dim=-1)  # (b, n, n)
    expected = x + block.proj_out((v @ weights.transpose(1, 2)).view_as(x))
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)


def test_encoder_decoder_layout_for_other_shapes():
    enc = Encoder(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), resolution=16, z_channels=8)
    dec = Decoder(ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(16,), resolution=16, z_channels=8)
    z = enc(torch.randn(1, 3, 16, 16))
    assert z.shape == (1, 8, 8, 8) and dec(z).shape == (1, 3, 16, 16)
    assert [len(level.attn) for level in enc.down] == [1, 0] and [len(level.attn) for level in dec.up] == [0, 2]
