"""Every seed (magic-research/vector_quantization) and LlamaGen tokenizer config has a preset with the published values.

The expected numbers are written here from the upstream config files named in each test (read, not
imported): sizes, losses, optimiser, schedule, batch and resolution.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from vq_tokenizers.cli import main
from vq_tokenizers.cluster_presets import CLUSTER_PRESETS
from vq_tokenizers.training.pixel_decoder import PIXEL_DECODER_PRESETS
from vq_tokenizers.presets import PRESETS, get_preset
from vq_tokenizers.vqkd import VQKDConfig
from vq_tokenizers.training.vqkd import VQKD_PRESETS

SEED_ADAM = {"lr": 5.4e-5, "disc_lr": 4.32e-4, "betas": (0.5, 0.9), "steps": 260_000, "batch_size": 96}  # vqgan/runner.py, interface.py
LLAMAGEN_ADAM = {"lr": 1e-4, "disc_lr": 1e-4, "betas": (0.9, 0.95), "steps": 400_000, "batch_size": 128, "disc_start": 20_000}


def _train(preset) -> dict:
    return {k: getattr(preset.train, k) for k in SEED_ADAM} | {"disc_start": preset.train.disc_start}


@pytest.mark.parametrize(
    ("name", "codes", "dim", "disc_layers", "gain", "ch_mult"),
    [
        ("vqgan_f16_1024", 1024, 256, 3, 0.8, (1, 1, 2, 2, 4)),  # vqgan/1024_imagenet_ddp.py
        ("vqgan_f16_8192", 8192, 256, 3, 0.8, (1, 1, 2, 2, 4)),  # vqgan/8192_imagenet_ddp.py
        ("vqgan_f16_16384", 16384, 256, 3, 0.8, (1, 1, 2, 2, 4)),  # vqgan/16384_imagenet_ddp.py
        ("vqgan_f16_8192_dd2_aglwg075", 8192, 256, 2, 0.75, (1, 1, 2, 2, 4)),  # + dd2_aglwg075.py
        ("vqgan_f16_16384_dd2_aglwg075", 16384, 256, 2, 0.75, (1, 1, 2, 2, 4)),
        ("vqgan_f8_8192", 8192, 256, 3, 0.8, (1, 1, 2, 4)),  # vqgan/f8.py: width_mults (1, 1, 2, 4)
        ("vqgan_f16_8192_stylegan2", 8192, 256, 3, 0.8, (1, 1, 2, 2, 4)),
    ],
)
def test_seed_vqgan_presets(name: str, codes: int, dim: int, disc_layers: int, gain: float, ch_mult: tuple) -> None:
    p = get_preset(name, family="vqgan")
    assert (p.model["quantizer"]["codebook_size"], p.model["quantizer"]["dim"], p.model["image_size"]) == (codes, dim, 256)
    assert p.model.get("quantizer", {}).get("distance", "l2") != "cosine" and tuple(p.model["ch_mult"]) == ch_mult
    assert (p.loss.l1_weight, p.loss.l2_weight, p.loss.perceptual_weight) == (1.0, 0.0, 1.0)  # L1 + LPIPS
    assert (p.loss.disc_layers, p.loss.adaptive_gain, p.loss.gan_weight) == (disc_layers, gain, 1.0)
    assert p.loss.discriminator == ("stylegan2" if "stylegan2" in name else "patchgan")
    assert _train(p) == SEED_ADAM | {"disc_start": 0}
    assert name.split("_", 1)[0] in p.description and "configs/vqgan/" in p.description


def test_seed_cvq_and_fsq_presets() -> None:
    cvq = get_preset("cvq_f16_8192_dd2_aglwg075")  # cvqvae/8192_dd2_aglwg075_imagenet_ddp.py
    assert cvq.family == "cvq" and cvq.model["quantizer"] == {"codebook_size": 8192, "dim": 256, "distance": "cosine", "anchor_reinit": True}
    assert (cvq.loss.disc_layers, cvq.loss.adaptive_gain) == (2, 0.75) and _train(cvq) == SEED_ADAM | {"disc_start": 0}
    for name, levels in (("fsq_f16_8000", (8, 8, 5, 5, 5)), ("fsq_f16_64000", (8, 8, 8, 5, 5, 5))):  # fsq/{8000,64000}_imagenet_ddp.py
        fsq = get_preset(name)
        assert fsq.family == "fsq" and tuple(fsq.model["quantizer"]["levels"]) == levels and fsq.model["image_size"] == 256
        assert _train(fsq) == SEED_ADAM | {"disc_start": 0}


@pytest.mark.parametrize(("name", "ch_mult", "attn"), [("llamagen_vq16", (1, 1, 2, 2, 4), (16,)), ("llamagen_vq8", (1, 2, 2, 4), (32,))])
def test_llamagen_vq_presets(name: str, ch_mult: tuple, attn: tuple) -> None:
    """LlamaGen tokenizer/tokenizer_image/vq_model.py VQ_16 / VQ_8 and vq_train.py defaults (= seed llamagen/vqgan.py)."""
    p = get_preset(name)
    assert tuple(p.model["ch_mult"]) == ch_mult and tuple(p.model["attn_resolutions"]) == attn and p.model["z_channels"] == 256
    assert p.model["quantizer"] == {"codebook_size": 16384, "dim": 8, "distance": "cosine"}
    assert (p.loss.l1_weight, p.loss.l2_weight, p.loss.perceptual_weight, p.loss.gan_weight, p.loss.adaptive_gain) == (0.0, 1.0, 1.0, 0.5, None)
    assert {k: getattr(p.train, k) for k in LLAMAGEN_ADAM} == LLAMAGEN_ADAM and p.train.grad_clip == 1.0


@pytest.mark.parametrize("name", sorted(n for n in VQKD_PRESETS if n != "tiny"))
def test_seed_vqkd_presets(name: str) -> None:
    """configs/vqkd/model.py + runner.py + interface.py + teachers/<teacher>.py (out_chans)."""
    p = VQKD_PRESETS[name]
    config = VQKDConfig.from_dict(p.model)
    enc, dec, q = config.encoder, config.decoder, config.quantizer
    assert (enc.image_size, enc.patch_size, enc.dim, enc.depth, enc.heads) == (224, 16, 768, 12, 12)
    assert (dec.image_size, dec.depth, dec.dim, dec.in_channels) == (14, 1, 768, 32)
    assert (q.codebook_size, q.dim, q.distance, q.beta, q.ema, q.kmeans_init) == (16384 if "16384" in name else 8192, 32, "cosine", 1.0, True, True)
    teacher, dim = {
        "clip": ("clip-proj", 512), "dino": ("dino", 768), "mae": ("mae", 768), "vit": ("tv-vit_b_16", 768),
        "convnext": ("tv-convnext_base", 1024), "evaclip": ("evaclip", 768), "openclip_L_14": ("openclip", 768),
        "openclip_bigG_14": ("openclip", 1280),
    }[name.removeprefix("vqkd_").rsplit("_", 1)[0]]
    assert (p.teacher, config.target_dim) == (teacher, dim)
    t = p.train
    assert (t.steps, t.warmup_steps, t.batch_size, t.lr, t.min_lr, t.weight_decay, t.betas) == (250_000, 25_000, 512, 2e-4, 1e-5, 1e-4, (0.9, 0.99))
    assert t.crop_scale == (0.08, 1.0)  # 'default' augmentation: RandomResizedCrop(224) with torchvision's scale
    assert f"configs/vqkd/{name.removeprefix('vqkd_')}_imagenet_ddp.py" in p.description


def test_vqkd_vit_has_beit_v2s_parameter_count() -> None:
    """No key bias (BEiT v2 has q and v biases only): the count of BEiT's layout, formula written here."""
    import torch

    from vq_tokenizers import VQKD

    with torch.device("meta"):
        model = VQKD(VQKDConfig.from_dict(VQKD_PRESETS["vqkd_clip_8192"].model))

    def stack(d: int, depth: int, patches: int, in_ch: int, patch: int) -> int:
        block = 2 * d + (3 * d * d + 2 * d) + (d * d + d) + 2 * d + (4 * d * d + 4 * d) + (4 * d * d + d)
        return in_ch * patch * patch * d + d + d + (patches + 1) * d + depth * block + 2 * d

    heads = (768 * 768 + 768 + 768 * 32 + 32) + (768 * 768 + 768 + 768 * 512 + 512)
    expected = stack(768, 12, 196, 3, 16) + stack(768, 1, 196, 32, 1) + heads + 8192 * 32
    assert sum(p.numel() for p in model.parameters()) == expected
    assert not any(n.endswith("attn.qkv.bias") for n, _ in model.named_parameters())


def test_seed_cluster_presets() -> None:
    """configs/cluster/interface.py (image_size 256, batch 256) + encoders/*.py (768-d, CLIP with_proj=False)."""
    assert sorted(CLUSTER_PRESETS) == ["cluster_clip_8192", "cluster_dino_8192", "cluster_mae_8192", "cluster_vit_8192"]
    teachers = {"cluster_clip_8192": "clip-ln", "cluster_dino_8192": "dino", "cluster_mae_8192": "mae", "cluster_vit_8192": "tv-vit_b_16"}
    for name, p in CLUSTER_PRESETS.items():
        assert (p.teacher, p.k, p.image_size, p.teacher_size, p.batch_size) == (teachers[name], 8192, 256, 256, 256)
        assert "configs/cluster/" in p.description


def test_seed_pixel_decoder_presets() -> None:
    """configs/decoder/vqgan.py (ir: vqgan/8192_dd2_aglwg075), llamagen.py (ir: llamagen/vqgan), vqkd.py, vqkd_large.py."""
    vqgan, llamagen = PIXEL_DECODER_PRESETS["vqgan"], PIXEL_DECODER_PRESETS["llamagen"]
    assert (vqgan.loss.disc_layers, vqgan.loss.adaptive_gain, vqgan.model["image_size"]) == (2, 0.75, 256)
    assert _train(vqgan) == SEED_ADAM | {"disc_start": 0}
    assert (llamagen.loss.l1_weight, llamagen.loss.l2_weight, llamagen.loss.perceptual_weight, llamagen.loss.gan_weight) == (0.0, 1.0, 1.0, 0.5)
    assert llamagen.loss.adaptive_gain is None and llamagen.model["image_size"] == 256
    assert {k: getattr(llamagen.train, k) for k in LLAMAGEN_ADAM} == LLAMAGEN_ADAM
    for name, (dim, depth, heads) in {"vqkd": (768, 12, 12), "vqkd_large": (1280, 32, 16)}.items():
        m = PIXEL_DECODER_PRESETS[name].model
        assert (m["decoder"], m["vit_dim"], m["vit_depth"], m["vit_heads"], m["image_size"]) == ("vit", dim, depth, heads, 256)


def test_vit_pixel_decoder_predicts_16x16_pixel_patches_per_token() -> None:
    import torch
    import torch.nn.functional as F

    from vq_tokenizers import VQKD
    from vq_tokenizers.pixel_decoder import PixelDecoderTokenizer
    from vq_tokenizers.training.pixel_decoder import pixel_decoder_shape

    torch.manual_seed(0)
    source = VQKD(VQKDConfig.from_dict({
        "encoder": {"image_size": 224, "patch_size": 16, "dim": 32, "depth": 1, "heads": 2},
        "decoder": {"image_size": 14, "patch_size": 1, "in_channels": 8, "dim": 32, "depth": 1, "heads": 2},
        "quantizer": {"codebook_size": 16, "dim": 8, "distance": "cosine"}, "target_dim": 8,
    })).eval()
    shape = pixel_decoder_shape("vqkd", source, {"vit_dim": 32, "vit_depth": 1, "vit_heads": 2})
    model = PixelDecoderTokenizer.from_source(source, **shape).eval()
    tokens = torch.randint(0, 16, (1, 16, 16))
    out = model.decode(tokens)
    assert out.shape == (1, 3, 256, 256) and model.last_layer is model.decoder.head[-1].weight
    with torch.no_grad():  # token (i, j)'s head output is the 16x16 RGB patch at (16 i, 16 j), channels last
        head = model.decoder.head(model.decoder.vit(model.embed_tokens(tokens)))
    patch = head[0, 3 * 16 + 5].view(16, 16, 3).permute(2, 0, 1)
    torch.testing.assert_close(out[0, :, 48:64, 80:96], patch)
    assert F.mse_loss(out, out).item() == 0.0


def test_every_preset_has_an_upstream_source_and_shows_its_fields() -> None:
    runner = CliRunner()
    listing = runner.invoke(main, ["presets"])
    assert listing.exit_code == 0, listing.output
    for (family, name), p in PRESETS.items():
        if name != "tiny":
            assert "configs/" in p.description or "vq_model.py" in p.description, name
    shown = runner.invoke(main, ["presets", "--show", "vqgan_f16_16384_dd2_aglwg075"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert (data["family"], data["loss"]["disc_layers"], data["loss"]["adaptive_gain"]) == ("vqgan", 2, 0.75)
    assert data["model"]["quantizer"]["codebook_size"] == 16384 and data["train"]["batch_size"] == 96
    vqkd = json.loads(runner.invoke(main, ["presets", "--show", "vqkd_clip_8192"]).output)
    assert vqkd["model"]["quantizer"]["beta"] == 1.0 and vqkd["train"]["crop_scale"] == [0.08, 1.0]
    assert json.loads(runner.invoke(main, ["presets", "--show", "tiny", "--family", "fsq"]).output)["family"] == "fsq"
    ambiguous = runner.invoke(main, ["presets", "--show", "tiny"])
    assert ambiguous.exit_code != 0 and "pass --family" in ambiguous.output
