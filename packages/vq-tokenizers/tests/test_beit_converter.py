"""BEiT v2 VQ-KD checkpoints load into our VQKD with identical tokens and predicted features.

The foreign side is a small test-only re-implementation written from the published architecture and
key layout (``encoder.blocks.<i>.attn.qkv`` without bias plus separate ``q_bias``/``v_bias``, explicit
``softmax(q k^T * d^-0.5) v``, ``gamma_1``/``gamma_2`` layer scale, ``fc_norm`` over the patch tokens,
``encode_task_layer``/``decode_task_layer``, a codebook of unit rows searched by euclidean distance to
the l2-normalised encoder output).  Weights are randomised everywhere (biases, norms, layer scales) so
a mis-mapped key cannot go unnoticed.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

from vq_tokenizers import load_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.converters.beit import beit_state_to_vqkd, convert_beit
from vq_tokenizers.vit import Attention


pytestmark = pytest.mark.usefixtures("single_thread")

class RefAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.v_bias = nn.Parameter(torch.randn(dim) * 0.1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        hd = d // self.heads
        q = (x @ self.qkv.weight[:d].T + self.q_bias).view(b, n, self.heads, hd).transpose(1, 2)
        k = (x @ self.qkv.weight[d : 2 * d].T).view(b, n, self.heads, hd).transpose(1, 2)
        v = (x @ self.qkv.weight[2 * d :].T + self.v_bias).view(b, n, self.heads, hd).transpose(1, 2)
        attn = torch.softmax((q * hd**-0.5) @ k.transpose(-1, -2), dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))


class RefBlock(nn.Module):
    def __init__(self, dim: int, heads: int, layer_scale: bool) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.attn = RefAttention(dim, heads)
        self.mlp = nn.Module()
        self.mlp.fc1, self.mlp.fc2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
        if layer_scale:
            self.gamma_1 = nn.Parameter(torch.rand(dim) + 0.5)
            self.gamma_2 = nn.Parameter(torch.rand(dim) + 0.5)
        self.layer_scale = layer_scale

    def forward(self, x):
        g1, g2 = (self.gamma_1, self.gamma_2) if self.layer_scale else (1.0, 1.0)
        x = x + g1 * self.attn(self.norm1(x))
        return x + g2 * self.mlp.fc2(F.gelu(self.mlp.fc1(self.norm2(x))))


class RefViT(nn.Module):
    def __init__(self, size: int, patch: int, cin: int, dim: int, depth: int, heads: int, layer_scale: bool) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(cin, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, (size // patch) ** 2 + 1, dim) * 0.5)
        self.blocks = nn.ModuleList(RefBlock(dim, heads, layer_scale) for _ in range(depth))
        self.fc_norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x):
        x = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.fc_norm(x[:, 1:])


class RefVQKD(nn.Module):
    """``vqkd_encoder_base_decoder_1x768x12_clip`` in miniature."""

    def __init__(self, *, size=32, patch=8, dim=128, heads=2, depth=2, n_code=64, code_dim=16, out_dim=24, layer_scale=False):
        super().__init__()
        self.grid = size // patch
        self.encoder = RefViT(size, patch, 3, dim, depth, heads, layer_scale)
        self.decoder = RefViT(self.grid, 1, code_dim, dim, 1, heads, layer_scale)
        self.encode_task_layer = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, code_dim))
        self.decode_task_layer = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, out_dim))
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Module()
        self.quantize.embedding.weight = nn.Parameter(F.normalize(torch.randn(n_code, code_dim), dim=1), requires_grad=False)
        self.quantize.embedding.cluster_size = nn.Parameter(torch.rand(n_code), requires_grad=False)
        self.quantize.embedding.embed_avg = nn.Parameter(torch.randn(n_code, code_dim), requires_grad=False)
        self.quantize.embedding.register_buffer("initted", torch.tensor([1.0]))
        self.quantize.register_buffer("cluster_size", torch.rand(n_code))
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("bias") or ".norm" in name or "fc_norm" in name:
                    p.add_(torch.randn_like(p) * 0.1)

    def tokens(self, x):
        z = F.normalize(self.encode_task_layer(self.encoder(x)), dim=-1)
        e = self.quantize.embedding.weight
        d = (z**2).sum(-1, keepdim=True) + (e**2).sum(-1) - 2 * z @ e.T
        idx = d.argmin(-1)
        return idx.view(x.shape[0], self.grid, self.grid), e[idx]

    def forward(self, x):
        idx, z_q = self.tokens(x)
        b, n, c = z_q.shape
        code_map = z_q.transpose(1, 2).reshape(b, c, self.grid, self.grid)
        return idx, self.decode_task_layer(self.decoder(code_map))


def _state_with_training_junk(ref: RefVQKD) -> dict[str, torch.Tensor]:
    state = dict(ref.state_dict())
    state["teacher_model.visual.proj"] = torch.randn(8, 8)
    state["scaling_layer.shift"] = torch.randn(1, 3, 1, 1)
    return state


@pytest.mark.parametrize("layer_scale", [False, True])
def test_converted_vqkd_gives_identical_tokens_and_features(layer_scale: bool) -> None:
    torch.manual_seed(0)
    ref = RefVQKD(layer_scale=layer_scale).eval()
    model = beit_state_to_vqkd(_state_with_training_junk(ref))
    cfg = model.config
    enc = cfg.encoder
    assert (enc.dim, enc.heads, enc.depth, enc.image_size, enc.patch_size) == (128, 2, 2, 32, 8)
    assert (cfg.decoder.depth, cfg.decoder.in_channels, cfg.decoder.image_size) == (1, 16, 4)
    assert (model.codebook_size, model.code_dim, cfg.target_dim) == (64, 16, 24)
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        ref_idx, ref_features = ref(images)
        idx = model.encode(images)
        features = model.decode_features(idx)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(features, ref_features, rtol=1e-4, atol=1e-5)


def test_attention_has_beit_biases_and_old_fused_checkpoints_load_exactly() -> None:
    """BEiT has q/v biases only; a checkpoint written with the old fused ``qkv.bias`` (key part included)
    loads into them and computes the same function: ``q . b_k`` is equal for every key, softmax drops it."""
    torch.manual_seed(1)
    attn = Attention(32, 4)
    assert attn.qkv.bias is None and {n for n, _ in attn.named_parameters()} == {"qkv.weight", "q_bias", "v_bias", "proj.weight", "proj.bias"}
    weight, fused, proj_w, proj_b = torch.randn(96, 32) * 0.2, torch.randn(96) * 3.0, torch.randn(32, 32) * 0.2, torch.randn(32)
    missing, unexpected = attn.load_state_dict(
        {"qkv.weight": weight, "qkv.bias": fused, "proj.weight": proj_w, "proj.bias": proj_b}, strict=False
    )
    assert (missing, unexpected) == ([], [])
    x = torch.randn(2, 5, 32)
    q, k, v = (x @ weight.T + fused).view(2, 5, 3, 4, 8).permute(2, 0, 3, 1, 4)  # the old fused form, key bias kept
    ref = torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1) @ v
    ref = ref.transpose(1, 2).reshape(2, 5, 32) @ proj_w.T + proj_b
    torch.testing.assert_close(attn(x), ref, rtol=1e-5, atol=1e-5)


def test_convert_file_round_trip_and_explicit_heads(tmp_path) -> None:
    torch.manual_seed(2)
    ref = RefVQKD(dim=64, heads=4, depth=1).eval()
    torch.save({"model": _state_with_training_junk(ref)}, tmp_path / "vqkd.pth")
    out = convert_beit(tmp_path / "vqkd.pth", tmp_path / "vqkd.safetensors", heads=4)
    model = load_tokenizer(out)
    cli = CliRunner().invoke(main, ["convert", "beit", str(tmp_path / "vqkd.pth"), "--out", str(tmp_path / "cli.safetensors"), "--heads", "4"])
    assert cli.exit_code == 0, cli.output
    assert load_tokenizer(tmp_path / "cli.safetensors").token_space_hash() == model.token_space_hash()
    assert model.family == "vqkd" and model.config.encoder.heads == 4
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(model.encode(images), ref.tokens(images)[0])
    with pytest.raises(NotImplementedError, match="train-pixel-decoder"):
        model.decode(model.encode(images))


def test_foreign_checkpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="quantize.embedding.weight"):
        beit_state_to_vqkd({"encoder.conv_in.weight": torch.zeros(1)}, source="taming.ckpt")
