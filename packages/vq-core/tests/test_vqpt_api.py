"""vq_core.vqpt against vector-quantize-pytorch itself: its README examples with only the import line
changed, its rotation-trick / DiVeQ / straight-through gradients, padding masks and frozen codebooks.

Where vqpt draws random weights (codebooks, projections) they are copied into ours before the
call, so outputs can match exactly where the math is the same (FSQ: bit for bit)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import vector_quantize_pytorch as vqpt_lib
from vq_core import FSQ as ConfigFSQ
from vq_core import LFQ as ConfigLFQ
from vq_core import (
    FSQConfig,
    LFQConfig,
    ResidualVQ as ConfigResidualVQ,
    ResidualVQConfig,
    VectorQuantizer,
    VectorQuantizerConfig,
)
from vq_core import vqpt

REF_IMPORT = "from vector_quantize_pytorch import {name}"
OUR_IMPORT = "from vq_core.vqpt import {name}"


def copy_weights(ref: torch.nn.Module, ours: torch.nn.Module) -> None:
    """vqpt's random codebooks and projections into ours (same math, same starting point)."""
    with torch.no_grad():
        if isinstance(ours, vqpt.VectorQuantize):
            ours.load_codebook(ref.codebook.detach())
        if isinstance(ours, vqpt.ResidualVQ):
            for stage, layer in zip(ours.stages, ref.layers):
                stage.load_codebook(layer.codebook.detach())
        for name in ("project_in", "project_out"):
            src, dst = getattr(ref, name), getattr(ours, name)
            dst.load_state_dict(src.state_dict())


def run_example(name: str, build: str, call: str, *, train: bool = True) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a README example twice, changing only the import line; weights copied between build and call.

    Modules stay in training mode (as the README runs them) unless ``train=False``."""
    spaces = []
    for import_line in (REF_IMPORT, OUR_IMPORT):
        ns: dict[str, Any] = {}
        torch.manual_seed(0)
        exec("import torch\n" + import_line.format(name=name) + "\n" + textwrap.dedent(build), ns)
        spaces.append(ns)
    ref_ns, our_ns = spaces
    module = next(k for k, v in ref_ns.items() if isinstance(v, torch.nn.Module))
    copy_weights(ref_ns[module], our_ns[module])
    ref_ns[module].train(train)
    our_ns[module].train(train)
    for ns in spaces:
        torch.manual_seed(1)
        exec(textwrap.dedent(call), ns)
    return ref_ns, our_ns


def assert_same_vq_output(ref: tuple, ours: tuple, *, exact: bool = True, nearest: torch.Tensor | None = None) -> None:
    """Same shapes, indices, quantized vectors and loss.

    With ``nearest`` (the float64 nearest code of every position) vqpt may differ from us only at
    near-ties where its fp32 ``cdist`` picks a code that is not the nearest one; ours must be exact.
    """
    assert [t.shape for t in ref] == [t.shape for t in ours]
    same = ours[1] == ref[1].long()
    if nearest is None:
        assert same.all()
    else:
        assert torch.equal(ours[1], nearest)
        assert (ref[1].long()[~same] != nearest[~same]).all() and (~same).float().mean() < 0.01
    q_ours, q_ref = ours[0].movedim(1, -1) if ours[0].ndim == 4 else ours[0], ref[0].movedim(1, -1) if ref[0].ndim == 4 else ref[0]
    if exact:
        assert torch.equal(q_ours[same], q_ref[same])
    else:
        torch.testing.assert_close(q_ours[same], q_ref[same], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[2].detach().float(), ref[2].detach().float(), rtol=1e-4, atol=1e-6)


def nearest_f64(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Brute-force float64 nearest code of every row of x (..., D)."""
    flat = x.reshape(-1, x.shape[-1]).double()
    return torch.cdist(flat, codes.double()).argmin(1).reshape(x.shape[:-1])


# --- README examples, import line changed ------------------------------------------------------------------
VQ_EXAMPLES = {
    "usage": """
        vq = VectorQuantize(
            dim = 256,
            codebook_size = 512,     # codebook size
            decay = 0.8,             # the exponential moving average decay, lower means the dictionary will change faster
            commitment_weight = 1.   # the weight on the commitment loss
        )
    """,
    "lower_codebook_dim": """
        vq = VectorQuantize(
            dim = 256,
            codebook_size = 256,
            codebook_dim = 16      # paper proposes setting this to 32 or as low as 8 to increase codebook usage
        )
    """,
    "cosine": """
        vq = VectorQuantize(
            dim = 256,
            codebook_size = 256,
            use_cosine_sim = True   # set this to True
        )
    """,
    "expire": """
        vq = VectorQuantize(
            dim = 256,
            codebook_size = 512,
            threshold_ema_dead_code = 2  # should actively replace any codes that have an exponential moving average cluster size less than 2
        )
    """,
}
VQ_CALL = """
    x = torch.randn(1, 1024, 256)
    quantized, indices, commit_loss = vq(x) # (1, 1024, 256), (1, 1024), (1)
    out = (quantized, indices, commit_loss)
"""


@pytest.mark.parametrize("example", sorted(VQ_EXAMPLES))
def test_readme_vector_quantize_examples_match_vqpt(example: str) -> None:
    ref, ours = run_example("VectorQuantize", VQ_EXAMPLES[example], VQ_CALL)
    # cosine: vqpt stores unit codes, we normalise the copied rows again (last-bit differences)
    assert_same_vq_output(ref["out"], ours["out"], exact=example != "cosine")
    if example in ("usage", "cosine"):  # the EMA step moved both codebooks the same way
        torch.testing.assert_close(F.normalize(ours["vq"].codebook, dim=1) if example == "cosine" else ours["vq"].codebook,
                                   ref["vq"].codebook, rtol=1e-5, atol=1e-6)


def test_readme_image_fmap_example_runs_and_refuses_what_vq_core_lacks() -> None:
    build = """
        vq = VectorQuantize(
            dim = 256,
            codebook_size = 256,
            accept_image_fmap = True,                   # set this true to be able to pass in an image feature map
        )
    """
    call = """
        img_fmap = torch.randn(1, 256, 32, 32)
        quantized, indices, loss = vq(img_fmap) # (1, 256, 32, 32), (1, 32, 32), (1,)
        out = (quantized, indices, loss)
    """
    ref, ours = run_example("VectorQuantize", build, call)
    nearest = nearest_f64(ours["img_fmap"].movedim(1, -1), ours["vq"].codebook.detach())
    assert_same_vq_output(ref["out"], ours["out"], nearest=nearest)
    quantized, indices, _ = ours["vq"].eval()(ours["img_fmap"])
    assert torch.equal(ours["vq"].indices_to_codes(indices), quantized)
    with pytest.raises(TypeError, match="orthogonal_reg_weight .*migration table"):
        vqpt.VectorQuantize(dim=256, codebook_size=256, accept_image_fmap=True, orthogonal_reg_weight=10)
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        vqpt.VectorQuantize(dim=256, codebook_size=256, codebok_dim=16)


def test_readme_residual_vq_example_matches_vqpt() -> None:
    build = """
        residual_vq = ResidualVQ(
            dim = 256,
            num_quantizers = 8,      # specify number of quantizers
            codebook_size = 1024,    # codebook size
        )
    """
    call = """
        x = torch.randn(1, 1024, 256)
        quantized, indices, commit_loss = residual_vq(x)
        out = (quantized, indices, commit_loss)
        quantized, indices, commit_loss, all_codes = residual_vq(x, return_all_codes = True)
    """
    ref, ours = run_example("ResidualVQ", build, call)
    (r_q, r_idx, r_loss), (q, idx, loss) = ref["out"], ours["out"]
    assert q.shape == r_q.shape and idx.shape == r_idx.shape == (1, 1024, 8) and loss.shape == r_loss.shape == (8,)
    # stage 1 is exact; vqpt's fp32 cdist flips a few near-ties, and a flipped stage changes the later residuals
    assert torch.equal(idx[..., 0], nearest_f64(ours["x"], ours["residual_vq"].stages[0].codebook.detach()))
    agree = (idx == r_idx).all(-1)
    assert agree.float().mean() > 0.98
    torch.testing.assert_close(q[agree], r_q[agree], rtol=1e-5, atol=1e-5)  # 8 codes summed in another order
    torch.testing.assert_close(loss, r_loss.detach(), rtol=1e-3, atol=0)
    assert ours["commit_loss"].shape == (8,) and ours["all_codes"].shape == (8, 1, 1024, 256)
    copy_weights(ref["residual_vq"], ours["residual_vq"])  # the two training steps moved the codebooks apart slightly
    torch.testing.assert_close(ours["residual_vq"].get_output_from_indices(idx), ref["residual_vq"].get_output_from_indices(idx))


def test_readme_fsq_example_matches_vqpt_bit_for_bit() -> None:
    build = """
        quantizer = FSQ(
            levels = [8, 5, 5, 5]
        )
    """
    call = """
        x = torch.randn(1, 1024, 4) # 4 since there are 4 levels
        xhat, indices = quantizer(x)
        # (1, 1024, 4), (1, 1024)
        assert torch.all(xhat == quantizer.indices_to_codes(indices))
    """
    ref, ours = run_example("FSQ", build, call)
    assert torch.equal(ours["xhat"], ref["xhat"]) and torch.equal(ours["indices"], ref["indices"].long())


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [({"levels": [8, 5, 5, 5], "dim": 16}, (2, 16, 6, 5)), ({"levels": [7, 5, 4], "num_codebooks": 2}, (2, 9, 6)),
     ({"levels": [8, 8, 5], "channel_first": True, "dim": 8}, (2, 8, 11))],
)
def test_fsq_projection_codebooks_and_layouts_match_vqpt_bit_for_bit(kwargs: dict, shape: tuple) -> None:
    torch.manual_seed(0)
    ref = vqpt_lib.FSQ(**kwargs)
    ours = vqpt.FSQ(**kwargs)
    copy_weights(ref, ours)
    x = torch.randn(*shape) * 2
    (ref_codes, ref_idx), (codes, idx) = ref(x), ours(x)
    assert torch.equal(codes, ref_codes) and torch.equal(idx, ref_idx.long())
    assert torch.equal(ours.indices_to_codes(idx), ref.indices_to_codes(ref_idx))
    aux = ours(x, return_aux=True)[2]
    assert aux["usage"] == torch.unique(idx).numel() / ours.codebook_size


def test_readme_lfq_examples_match_vqpt_codes_and_indices() -> None:
    build = """
        quantizer = LFQ(
            codebook_size = 65536,      # codebook size, must be a power of 2
            dim = 16,                   # this is the input feature dimension, defaults to log2(codebook_size) if not defined
            entropy_loss_weight = 0.1,  # how much weight to place on entropy loss
            diversity_gamma = 1.        # within entropy loss, how much weight to give to diversity of codes, taken from https://arxiv.org/abs/1911.05894
        )
    """
    call = """
        image_feats = torch.randn(1, 16, 32, 32)
        quantized, indices, entropy_aux_loss = quantizer(image_feats, inv_temperature=100.)  # you may want to experiment with temperature
        # (1, 16, 32, 32), (1, 32, 32), ()
        assert (quantized == quantizer.indices_to_codes(indices)).all()
        seq = torch.randn(1, 32, 16)
        seq_out, *_ = quantizer(seq)
        assert seq.shape == seq_out.shape
        video_feats = torch.randn(1, 16, 10, 32, 32)
        video_out, video_indices, _ = quantizer(video_feats)
        assert video_feats.shape == video_out.shape
    """
    # eval: vqpt's training-time entropy is exact over all 65536 codes (a 10240 x 65536 matrix for the video)
    ref, ours = run_example("LFQ", build, call, train=False)
    for key in ("quantized", "indices", "seq_out", "video_out", "video_indices"):
        assert torch.equal(ours[key], ref[key].to(ours[key].dtype)), key
    assert ours["entropy_aux_loss"].ndim == 0 and torch.isfinite(ours["entropy_aux_loss"])


def test_readme_lfq_multiple_codebooks_example_matches_vqpt() -> None:
    build = """
        quantizer = LFQ(
            codebook_size = 4096,
            dim = 16,
            num_codebooks = 4  # 4 codebooks, total codebook dimension is log2(4096) * 4
        )
    """
    call = """
        image_feats = torch.randn(1, 16, 32, 32)
        quantized, indices, entropy_aux_loss = quantizer(image_feats)
        # (1, 16, 32, 32), (1, 32, 32, 4), ()
        assert image_feats.shape == quantized.shape
    """
    ref, ours = run_example("LFQ", build, call)
    assert ours["indices"].shape == (1, 32, 32, 4)
    assert torch.equal(ours["indices"], ref["indices"].long())
    torch.testing.assert_close(ours["quantized"], ref["quantized"])
    ours["quantizer"].eval()
    ref["quantizer"].eval()
    q, idx, _ = ours["quantizer"](ours["image_feats"])
    assert torch.equal(q, ours["quantizer"].indices_to_codes(idx))
    torch.testing.assert_close(ours["quantizer"].indices_to_codes(idx), ref["quantizer"].indices_to_codes(idx))


# --- gradients -----------------------------------------------------------------------------------------
def pair(**kwargs: Any) -> tuple[torch.nn.Module, vqpt.VectorQuantize]:
    torch.manual_seed(0)
    ref = vqpt_lib.VectorQuantize(**kwargs)
    ours = vqpt.VectorQuantize(**kwargs)
    copy_weights(ref, ours)
    return ref.train(), ours.train()


def grads(module: torch.nn.Module, x: torch.Tensor, upstream: torch.Tensor, **call: Any) -> tuple[torch.Tensor, ...]:
    x = x.clone().requires_grad_(True)
    out, idx, loss = module(x, **call)
    (out * upstream).sum().backward()
    return out.detach(), idx, x.grad


@pytest.mark.parametrize("kwargs", [{}, {"use_cosine_sim": True}, {"codebook_dim": 4}])
def test_rotation_trick_gradients_match_vqpt(kwargs: dict) -> None:
    ref, ours = pair(dim=8, codebook_size=32, rotation_trick=True, **kwargs)
    torch.manual_seed(2)
    x, g = torch.randn(3, 20, 8), torch.randn(3, 20, 8)
    ref_out, ref_idx, ref_grad = grads(ref, x, g)
    out, idx, grad = grads(ours, x, g)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(grad, g)  # it is not the straight-through gradient


def test_rotation_trick_gradient_is_the_scaled_rotation_onto_the_code() -> None:
    """Independent of vqpt: grad = |q|/|x| R^T g with R the rotation in the (x, q) plane taking x/|x| to q/|q|."""
    torch.manual_seed(0)
    x = torch.randn(6, dtype=torch.float64, requires_grad=True)
    q = torch.randn(6, dtype=torch.float64)
    g = torch.randn(6, dtype=torch.float64)
    from vq_core.quantizers.gradients import rotation_trick

    out = rotation_trick(x[None], q[None])[0]
    assert torch.equal(out, q)
    (out * g).sum().backward()
    u, v = x.detach() / x.detach().norm(), q / q.norm()
    e1, e2 = u, F.normalize(v - (v @ u) * u, dim=0)  # orthonormal basis of the plane
    cos, sin = v @ e1, v @ e2
    rot = torch.eye(6, dtype=torch.float64) + (cos - 1) * (torch.outer(e1, e1) + torch.outer(e2, e2)) + sin * (torch.outer(e2, e1) - torch.outer(e1, e2))
    torch.testing.assert_close(rot @ u, v)
    torch.testing.assert_close(x.grad, q.norm() / x.detach().norm() * rot.T @ g)


def test_straight_through_gradient_matches_vqpt() -> None:
    ref, ours = pair(dim=8, codebook_size=32, rotation_trick=False)
    x, g = torch.randn(2, 10, 8), torch.randn(2, 10, 8)
    _, ref_idx, ref_grad = grads(ref, x, g)
    _, idx, grad = grads(ours, x, g)
    assert torch.equal(idx, ref_idx) and torch.equal(grad, ref_grad) and torch.equal(grad, g)


def test_diveq_gradients_reach_input_and_codebook_as_in_vqpt() -> None:
    kwargs = dict(dim=8, codebook_size=16, directional_reparam=True, directional_reparam_variance=0.0, threshold_ema_dead_code=1e-9)
    ref, ours = pair(**kwargs)
    torch.manual_seed(3)
    x, g = torch.randn(2, 12, 8), torch.randn(2, 12, 8)
    ref_out, ref_idx, ref_grad = grads(ref, x, g)
    out, idx, grad = grads(ours, x, g)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.codebook.grad, ref._codebook.embed.grad[0])


# --- padding masks and frozen codebooks ----------------------------------------------------------------------
def test_padding_mask_matches_vqpt_outputs_loss_and_ema_update() -> None:
    ref, ours = pair(dim=8, codebook_size=16, decay=0.5, rotation_trick=False)
    torch.manual_seed(4)
    x = torch.randn(3, 10, 8)
    lens = torch.tensor([10, 4, 7])
    mask = torch.arange(10) < lens[:, None]
    r_out, r_idx, r_loss = ref(x, mask=mask)
    out, idx, loss = ours(x, mask=mask)
    assert torch.equal(idx, r_idx) and (idx[~mask] == -1).all()
    torch.testing.assert_close(out, r_out)
    torch.testing.assert_close(loss, r_loss)
    assert (out[~mask] == 0).all()
    torch.testing.assert_close(ours.codebook, ref.codebook, rtol=1e-5, atol=1e-6)
    # padding content has no effect at all: not on the codebook, not on the loss
    torch.manual_seed(0)
    first = vqpt.VectorQuantize(dim=8, codebook_size=16, decay=0.5, rotation_trick=False)
    second = vqpt.VectorQuantize(dim=8, codebook_size=16, decay=0.5, rotation_trick=False)
    second.load_codebook(first.codebook.detach())
    noisy = torch.where(mask[..., None], x, 100 * torch.randn_like(x))
    a, b = first(x, lens=lens), second(noisy, mask=mask)
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2]) and torch.equal(first.codebook, second.codebook)


def test_mask_on_the_config_quantizers_leaves_padding_out_of_everything() -> None:
    torch.manual_seed(0)
    config = VectorQuantizerConfig(codebook_size=16, dim=4, ema=True, ema_decay=0.5, expire_threshold=0.5)
    x = torch.randn(2, 4, 3, 3)
    mask = torch.rand(2, 3, 3) > 0.4
    seen = x.permute(0, 2, 3, 1)[mask]  # (M, 4) the real positions only
    torch.manual_seed(1)
    with_mask = VectorQuantizer(config).train()
    torch.manual_seed(1)
    only_real = VectorQuantizer(config).train()
    torch.manual_seed(2)
    _, idx, aux = with_mask.quantize(x, mask=mask)
    torch.manual_seed(2)
    _, ref_idx, ref_aux = only_real.quantize(seen)
    assert torch.equal(idx[mask], ref_idx)
    for key in ("loss", "perplexity", "usage"):
        torch.testing.assert_close(aux[key], ref_aux[key])
    torch.testing.assert_close(with_mask.codebook, only_real.codebook)
    lfq = ConfigLFQ(LFQConfig(dim=4))
    z = torch.randn(5, 4)
    m = torch.tensor([True, False, True, True, False])
    torch.testing.assert_close(lfq.quantize(z, mask=m)[2]["loss"], lfq.quantize(z[m])[2]["loss"])


def test_freeze_codebook_keeps_the_codebook_and_its_gradient_off() -> None:
    ref, ours = pair(dim=8, codebook_size=16, decay=0.5)
    before = ours.codebook.detach().clone()
    x = torch.randn(2, 10, 8)
    r, o = ref(x, freeze_codebook=True), ours(x, freeze_codebook=True)
    assert torch.equal(o[1], r[1]) and torch.equal(ours.codebook, before) and torch.equal(ref.codebook, before)
    ours(x)
    assert not torch.equal(ours.codebook, before)  # not frozen: the EMA moves it
    learnable = VectorQuantizer(VectorQuantizerConfig(codebook_size=16, dim=8, freeze_codebook=True, expire_threshold=5.0)).train()
    frozen_codes = learnable.codebook.detach().clone()
    _, _, aux = learnable.quantize(torch.randn(32, 8, requires_grad=True))
    aux["loss"].backward()
    assert learnable.codebook.grad is None and torch.equal(learnable.codebook, frozen_codes)


# --- indices_to_codes everywhere, configs -------------------------------------------------------------------
def test_indices_to_codes_on_every_config_quantizer_gives_the_output() -> None:
    torch.manual_seed(0)
    quantizers = [
        VectorQuantizer(VectorQuantizerConfig(codebook_size=32, dim=6, codebook_dim=3)),
        ConfigFSQ(FSQConfig(levels=(5, 4, 3, 3, 3, 3))),
        ConfigLFQ(LFQConfig(dim=6)),
        ConfigLFQ(LFQConfig(dim=6, bit_order="msb_first")),
        ConfigResidualVQ(ResidualVQConfig(quantizer=VectorQuantizerConfig(codebook_size=32, dim=6), depth=3)),
    ]
    z = torch.randn(2, 6, 4, 5)
    for q in quantizers:
        out, idx, _ = q.eval().quantize(z)
        torch.testing.assert_close(q.indices_to_codes(idx), out.movedim(1, -1), rtol=1e-5, atol=1e-6)
    lsb, msb = quantizers[2].quantize(z)[1], quantizers[3].quantize(z)[1]
    reversed_bits = sum(((lsb >> i) & 1) << (5 - i) for i in range(6))
    assert torch.equal(msb, reversed_bits)


def test_keyword_faces_build_the_configs_tokenizers_use() -> None:
    vq = vqpt.VectorQuantize(dim=16, codebook_size=64, decay=0.9, kmeans_init=True, use_cosine_sim=True, threshold_ema_dead_code=2)
    assert isinstance(vq, VectorQuantizer) and vq.config == VectorQuantizerConfig(
        codebook_size=64, dim=16, distance="cosine", beta=1.0, ema=True, ema_decay=0.9, usage_decay=0.9,
        kmeans_init=True, expire_threshold=2, gradient="rotation", train_lookup="current",
    )
    again = vqpt.VectorQuantize(vq.config)
    assert again.config == vq.config
    assert isinstance(vqpt.FSQ(FSQConfig(levels=(8, 5, 5, 5))), ConfigFSQ)
    learnable = vqpt.vector_quantizer_config(8, 16, ema_update=False, learnable_codebook=True, commitment_weight=0.5)
    assert (learnable.ema, learnable.beta, learnable.codebook_weight) == (False, 0.5, 0.5)
    # the config-built classes keep their interface
    _, idx, aux = ConfigFSQ(FSQConfig(levels=(8, 5, 5, 5)))(torch.randn(2, 4, 3, 3))
    assert idx.shape == (2, 3, 3) and "loss" in aux


def test_added_config_fields_leave_old_hashes_and_dumps_unchanged() -> None:
    """Hashes as computed before the gradient/freeze/mask options existed (checkpoint resume, manifests)."""
    assert VectorQuantizerConfig(codebook_size=64, dim=8).config_hash() == "65dd973b9073ce4b"
    assert LFQConfig(dim=5).config_hash() == "8e58f52045bc3800"
    rvq = ResidualVQConfig(quantizer=VectorQuantizerConfig(codebook_size=64, dim=8), depth=2)
    assert rvq.config_hash() == "61560bdc8572b039"
    assert "gradient" not in VectorQuantizerConfig(codebook_size=64, dim=8).model_dump()
    rotated = VectorQuantizerConfig(codebook_size=64, dim=8, gradient="rotation")
    assert rotated.model_dump()["gradient"] == "rotation" and rotated.config_hash() != "65dd973b9073ce4b"
    assert VectorQuantizerConfig.model_validate_json(rotated.model_dump_json()) == rotated


def test_train_lookup_current_returns_the_codes_the_search_saw() -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 8)
    outputs = {}
    for lookup in ("updated", "current"):
        torch.manual_seed(0)
        q = VectorQuantizer(VectorQuantizerConfig(codebook_size=16, dim=8, ema=True, ema_decay=0.5, train_lookup=lookup))
        before = q.codebook.detach().clone()
        out, idx, _ = q.train().quantize(x)
        outputs[lookup] = (out, before[idx], q.codebook.detach()[idx])
    out, before, after = outputs["current"]
    torch.testing.assert_close(out, before)
    out, before, after = outputs["updated"]
    torch.testing.assert_close(out, after)
    assert not torch.allclose(before, after)
