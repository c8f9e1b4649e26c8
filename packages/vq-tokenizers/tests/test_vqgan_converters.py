"""Converters: taming-transformers and LlamaGen checkpoints load into our VQGAN with identical outputs.

The foreign side is a small test-only re-implementation written from the published architecture and
key layout (separate q/k/v convs with an explicit softmax(q k^T / sqrt(c)) v, ``nin_shortcut``, taming's
resolution-indexed decoder ``up`` list, LlamaGen's ``conv_blocks`` / ``mid`` list and l2-normalised
codebook).  Its state dict is what a real checkpoint holds; the converted model must tokenize to the
same indices and decode to the same pixels.  One block is also checked against a hand-written
functional forward that reads the foreign keys directly.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vq_tokenizers import load_tokenizer
from vq_tokenizers.converters import convert_llamagen, convert_taming, llamagen_state_to_vqgan, taming_state_to_vqgan

pytestmark = pytest.mark.usefixtures("single_thread")


CH, CH_MULT, BLOCKS, RES, Z = 32, (1, 2, 2), 2, 32, 16


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(32, c, eps=1e-6)


class RefRes(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = _norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2, self.conv2 = _norm(cout), nn.Conv2d(cout, cout, 3, padding=1)
        if cin != cout:
            self.nin_shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x):
        h = self.conv2(F.silu(self.norm2(self.conv1(F.silu(self.norm1(x))))))
        return (self.nin_shortcut(x) if hasattr(self, "nin_shortcut") else x) + h


class RefAttn(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.norm = _norm(c)
        self.q, self.k, self.v, self.proj_out = (nn.Conv2d(c, c, 1) for _ in range(4))

    def forward(self, x):
        b, c, h, w = x.shape
        y = self.norm(x)
        q, k, v = (m(y).reshape(b, c, h * w) for m in (self.q, self.k, self.v))
        attn = torch.softmax(torch.bmm(q.permute(0, 2, 1), k) * c**-0.5, dim=2)  # (b, query, key)
        out = torch.bmm(v, attn.permute(0, 2, 1)).reshape(b, c, h, w)
        return x + self.proj_out(out)


class RefResample(nn.Module):
    def __init__(self, c: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv = nn.Conv2d(c, c, 3, stride=2 if down else 1, padding=0 if down else 1)

    def forward(self, x):
        return self.conv(F.pad(x, (0, 1, 0, 1))) if self.down else self.conv(F.interpolate(x, scale_factor=2.0))


class Reference(nn.Module):
    """taming ``VQModel`` or LlamaGen ``VQModel`` naming, attention at the lowest resolution (8x8)."""

    def __init__(self, style: str, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.style = style
        taming = style == "taming"
        levels = len(CH_MULT)
        widths = [CH] + [CH * m for m in CH_MULT]
        self.encoder, self.decoder = nn.Module(), nn.Module()
        self.encoder.conv_in = nn.Conv2d(3, CH, 3, padding=1)
        down = nn.ModuleList()
        for i in range(levels):
            level = nn.Module()
            blocks = nn.ModuleList(RefRes(widths[i] if j == 0 else widths[i + 1], widths[i + 1]) for j in range(BLOCKS))
            setattr(level, "block" if taming else "res", blocks)
            level.attn = nn.ModuleList(RefAttn(widths[i + 1]) for _ in range(BLOCKS)) if i == levels - 1 else nn.ModuleList()
            if i != levels - 1:
                level.downsample = RefResample(widths[i + 1], down=True)
            down.append(level)
        setattr(self.encoder, "down" if taming else "conv_blocks", down)
        for part, width in ((self.encoder, widths[-1]), (self.decoder, widths[-1])):
            mids = [RefRes(width, width), RefAttn(width), RefRes(width, width)]
            if taming:
                part.mid = nn.Module()
                part.mid.block_1, part.mid.attn_1, part.mid.block_2 = mids
            else:
                part.mid = nn.ModuleList(mids)
        self.encoder.norm_out, self.encoder.conv_out = _norm(widths[-1]), nn.Conv2d(widths[-1], Z, 3, padding=1)
        self.decoder.conv_in = nn.Conv2d(Z, widths[-1], 3, padding=1)
        up, block_in = [], widths[-1]
        for i in reversed(range(levels)):  # execution order
            level, out = nn.Module(), widths[i + 1]
            blocks = nn.ModuleList(RefRes(block_in if j == 0 else out, out) for j in range(BLOCKS + 1))
            setattr(level, "block" if taming else "res", blocks)
            level.attn = nn.ModuleList(RefAttn(out) for _ in range(BLOCKS + 1)) if i == levels - 1 else nn.ModuleList()
            if i != 0:
                level.upsample = RefResample(out, down=False)
            up.append(level)
            block_in = out
        # taming stores decoder levels by resolution index, LlamaGen in execution order
        setattr(self.decoder, "up" if taming else "conv_blocks", nn.ModuleList(up[::-1] if taming else up))
        self.decoder.norm_out, self.decoder.conv_out = _norm(CH), nn.Conv2d(CH, 3, 3, padding=1)
        self.quant_conv, self.post_quant_conv = nn.Conv2d(Z, embed_dim, 1), nn.Conv2d(embed_dim, Z, 1)
        self.quantize = nn.Module()
        self.quantize.embedding = nn.Embedding(n_embed, embed_dim)

    def _levels(self, part: str) -> list[nn.Module]:
        """Levels in execution order."""
        if self.style == "llamagen":
            return list(getattr(self, part).conv_blocks)
        return list(self.encoder.down) if part == "encoder" else list(self.decoder.up)[::-1]

    def _blocks(self, level):
        return level.block if self.style == "taming" else level.res

    def _mid(self, part, x):
        mid = part.mid
        mods = [mid.block_1, mid.attn_1, mid.block_2] if self.style == "taming" else list(mid)
        for m in mods:
            x = m(x)
        return x

    def codebook(self):
        e = self.quantize.embedding.weight
        return F.normalize(e, dim=-1) if self.style == "llamagen" else e

    def tokens(self, x):
        h = self.encoder.conv_in(x)
        for level in self._levels("encoder"):
            for j, block in enumerate(self._blocks(level)):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "downsample"):
                h = level.downsample(h)
        h = self._mid(self.encoder, h)
        z = self.quant_conv(self.encoder.conv_out(F.silu(self.encoder.norm_out(h))))
        flat = z.permute(0, 2, 3, 1).reshape(-1, z.shape[1])
        if self.style == "llamagen":
            flat = F.normalize(flat, dim=-1)
        e = self.codebook()
        d = (flat**2).sum(1, keepdim=True) + (e**2).sum(1) - 2 * flat @ e.t()
        return d.argmin(1).view(z.shape[0], z.shape[2], z.shape[3])

    def decode(self, tokens):
        z = self.codebook()[tokens].permute(0, 3, 1, 2)
        h = self._mid(self.decoder, self.decoder.conv_in(self.post_quant_conv(z)))
        for level in self._levels("decoder"):
            for j, block in enumerate(self._blocks(level)):
                h = block(h)
                if len(level.attn):
                    h = level.attn[j](h)
            if hasattr(level, "upsample"):
                h = level.upsample(h)
        return self.decoder.conv_out(F.silu(self.decoder.norm_out(h)))


def _reference(style: str, n_embed: int, embed_dim: int) -> Reference:
    """Random weights everywhere - norms included - so any mis-mapped key changes the outputs."""
    torch.manual_seed(0)
    ref = Reference(style, n_embed, embed_dim).eval()
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif p.ndim > 1:
                p.copy_(torch.randn_like(p) * (2.0 / p[0].numel()) ** 0.5)
            else:
                p.copy_(0.05 * torch.randn_like(p))
    return ref


def _images() -> torch.Tensor:
    return torch.rand(2, 3, RES, RES, generator=torch.Generator().manual_seed(1)) * 2 - 1


@torch.no_grad()
def _assert_same(model, ref):
    images = _images()
    expected = ref.tokens(images)
    assert len(expected.unique()) > 4  # a meaningful comparison, not one code everywhere
    assert torch.equal(model.encode(images), expected)
    torch.testing.assert_close(model.decode(expected), ref.decode(expected), rtol=1e-4, atol=1e-4)


def test_taming_state_dict_converts_to_identical_outputs(tmp_path):
    ref = _reference("taming", n_embed=64, embed_dim=8)
    state = ref.state_dict()
    torch.manual_seed(2)
    disc = {"loss.discriminator.main.0.weight": torch.randn(8, 3, 4, 4), "loss.perceptual_loss.lin0.model.1.weight": torch.ones(1)}
    model, disc_state = taming_state_to_vqgan({**state, **disc}, image_size=RES)
    assert model.config.attn_resolutions == (8,) and model.config.ch_mult == CH_MULT and model.config.num_res_blocks == BLOCKS
    assert model.config.quantizer.distance == "l2" and model.codebook_size == 64
    assert list(disc_state) == ["main.0.weight"]
    _assert_same(model, ref)

    torch.save({"state_dict": {**state, **disc}, "global_step": 5}, tmp_path / "last.ckpt")
    out = convert_taming(tmp_path / "last.ckpt", tmp_path / "vqgan.safetensors", image_size=RES)
    loaded = load_tokenizer(out)
    _assert_same(loaded, ref)


def test_llamagen_state_dict_converts_to_identical_outputs(tmp_path):
    ref = _reference("llamagen", n_embed=128, embed_dim=8)
    state = {**ref.state_dict(), "quantize.codebook_used": torch.zeros(65536)}
    model = llamagen_state_to_vqgan(state, image_size=RES)
    assert model.config.quantizer.distance == "cosine" and model.config.quantizer.dim == 8
    assert model.config.attn_resolutions == (8,)
    _assert_same(model, ref)

    torch.save({"model": state, "discriminator": {"main.0.weight": torch.zeros(2)}, "steps": 3}, tmp_path / "0003.pt")
    loaded = load_tokenizer(convert_llamagen(tmp_path / "0003.pt", tmp_path / "vq16.safetensors", image_size=RES))
    _assert_same(loaded, ref)


def test_attention_block_against_a_functional_forward_on_taming_keys():
    """Hand-written GroupNorm -> q, k, v 1x1 convs -> softmax(q^T k / sqrt(c)) -> v -> proj_out, residual,
    straight from the taming key names, against our converted (fused qkv, SDPA) block."""
    ref = _reference("taming", n_embed=64, embed_dim=8)
    state = ref.state_dict()
    model, _ = taming_state_to_vqgan(state, image_size=RES)
    x = torch.randn(2, CH * CH_MULT[-1], 8, 8, generator=torch.Generator().manual_seed(3))
    p = "encoder.mid.attn_1."
    h = F.group_norm(x, 32, state[p + "norm.weight"], state[p + "norm.bias"], eps=1e-6)
    q, k, v = (F.conv2d(h, state[p + n + ".weight"], state[p + n + ".bias"]).flatten(2) for n in "qkv")
    weights = torch.softmax(torch.einsum("bci,bcj->bij", q, k) / q.shape[1] ** 0.5, dim=-1)
    out = torch.einsum("bij,bcj->bci", weights, v).view_as(x)
    expected = x + F.conv2d(out, state[p + "proj_out.weight"], state[p + "proj_out.bias"])
    with torch.no_grad():
        torch.testing.assert_close(model.encoder.mid.attn(x), expected, rtol=1e-5, atol=1e-5)


def test_foreign_checkpoints_of_other_kinds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="Gumbel"):
        taming_state_to_vqgan({"quantize.embed.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="quantize.embedding.weight"):
        llamagen_state_to_vqgan({"encoder.conv_in.weight": torch.zeros(1)})
    torch.save({"optimizer": {}}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"x.pt: no weights under any of \['ema', 'model', 'state_dict'\]"):
        convert_llamagen(tmp_path / "x.pt", tmp_path / "y.safetensors")
