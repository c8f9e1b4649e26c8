"""Training-step speed against the upstream code at equal shapes, weights and threads, and against the GEMM limit.

Two models, each timed in one run with interleaved repeats (every repeat steps every variant once, in turn,
on the same batch, so a load spike from other jobs hits all of them alike; the table shows the median):

``vqgan``  64 px images, ch 64, ch_mult (1, 1, 2, 2, 4) = f16 (64 px -> 4x4 latents; attention at the 16x16
           level and in the middle as taming's f16 config), 2 res blocks a level, 1024 x 256 codes, batch 4,
           L1 + codebook/commitment loss, Adam (lr 1e-4, betas (0.5, 0.9)), ``--vqgan-threads`` (2).
           Peer: taming-transformers' ``VQModel`` (``taming.models.vqgan``; its Lightning base class and
           ``main.instantiate_from_config`` are stubbed - neither is imported by a training step).
``ar``     8 layers x 512, 8 heads, vocab 16384, 1000 classes, 16x16 tokens (256 + class token), batch 8,
           next-token cross entropy, AdamW (LlamaGen's betas (0.9, 0.95), wd 0.05), ``--ar-threads`` (1),
           dropouts 0 in both (identical losses).  Peer: LlamaGen's ``autoregressive.models.gpt.Transformer``.

Variants: the peer (fp32, eager, ``torch.optim`` defaults: the per-parameter loop on CPU), then ours in fp32
eager and with the switches the trainers expose - ``--precision bf16`` (autocast, fp32 weights), ``--compile``
(inductor), the multi-tensor optimizer (``vq_core.acceleration.adam``) and, for the VQGAN, channels_last
(the tokenizer trainer's default, ``channels_last: true``).  Ours is loaded with the peer's
weights (through the project's converters) and the first loss must equal the peer's before a number is
printed.  Columns: ms/step, speed-up vs the peer, model FLOP/s (FLOPs of one step counted by
``torch.utils.flop_counter`` on the fp32 eager step) and that rate as a share of a bare ``torch.mm`` of the
model's dominant layer shape in the same dtype and threads (the "GEMM limit").  The loss curves of every
variant over the timed steps are printed with the largest relative gap to the peer's fp32 curve.

The upstream code is not part of this project: pass checkouts of it.

    .venv/bin/python benchmarks/train_steps.py --taming /path/to/taming-transformers --llamagen /path/to/LlamaGen \
        [--only vqgan ar] [--repeats 7] [--no-compile] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vq_core.acceleration import adam, autocast, maybe_compile

Step = Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class Variant:
    name: str
    step: Step
    dtype: torch.dtype = torch.float32
    times: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def gemm_rate(m: int, k: int, n: int, dtype: torch.dtype, seconds: float = 1.0) -> float:
    """FLOP/s of a bare (m, k) x (k, n) ``torch.mm`` in ``dtype`` on this CPU (best of repeated runs)."""
    a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
    torch.mm(a, b)
    best, spent = float("inf"), 0.0
    while spent < seconds:
        tic = time.perf_counter()
        torch.mm(a, b)
        took = time.perf_counter() - tic
        best, spent = min(best, took), spent + took
    return 2 * m * k * n / best


def step_flops(step: Step, batch: torch.Tensor, labels: torch.Tensor | None) -> int:
    """FLOPs (matmuls and convolutions, forward + backward) of one training step."""
    counter = FlopCounterMode(display=False)
    with counter:
        step(batch, labels)
    return counter.get_total_flops()


def run_interleaved(variants: list[Variant], batches: list[tuple[torch.Tensor, torch.Tensor | None]], warmup: int) -> None:
    """``warmup`` untimed steps each (compilation happens here), then one timed step per variant per batch."""
    for batch, labels in batches[:warmup]:
        for v in variants:
            v.losses.append(float(v.step(batch, labels)))
    for batch, labels in batches[warmup:]:
        for v in variants:
            tic = time.perf_counter()
            loss = v.step(batch, labels)
            v.times.append(time.perf_counter() - tic)
            v.losses.append(float(loss))


def report(
    title: str, variants: list[Variant], flops: int, gemm: dict[torch.dtype, float], gemm_shape: tuple[int, int, int], tolerance: float
) -> dict[str, Any]:
    """Print the table; ``tolerance`` is the largest relative loss gap to the peer's fp32 curve a variant may show."""
    peer = variants[0]
    peer_ms = 1e3 * statistics.median(peer.times)
    rows = []
    print(f"\n{title}\nload: {os.getloadavg()[0]:.2f} (1-min average); step = {flops / 1e9:.2f} GFLOP; "
          f"GEMM limit = torch.mm {gemm_shape}: " + ", ".join(f"{str(d).split('.')[-1]} {r / 1e9:.1f} GFLOP/s" for d, r in gemm.items()))
    print(f"{'variant':<28} {'ms/step':>9} {'vs peer':>8} {'GFLOP/s':>8} {'% GEMM':>7} {'max loss gap':>13} (tolerance {tolerance:g})")
    for v in variants:
        ms = 1e3 * statistics.median(v.times)
        rate = flops / (ms / 1e3)
        gap = max(abs(a - b) / abs(b) for a, b in zip(v.losses, peer.losses))
        share = 100 * rate / gemm[v.dtype]
        verdict = "ok" if gap <= tolerance else "OUTSIDE"
        print(f"{v.name:<28} {ms:>9.1f} {peer_ms / ms:>7.2f}x {rate / 1e9:>8.1f} {share:>6.0f}% {gap:>13.2e} {verdict}")
        rows.append({"variant": v.name, "ms": ms, "speedup": peer_ms / ms, "gflops": rate / 1e9, "gemm_share": share,
                     "max_loss_gap": gap, "within_tolerance": gap <= tolerance, "losses": v.losses, "times_ms": [1e3 * t for t in v.times]})
    print("loss curves (warm-up steps first):")
    for v in variants:
        print(f"  {v.name:<26} " + " ".join(f"{x:.4f}" for x in v.losses))
    return {"title": title, "gflop_per_step": flops / 1e9, "gemm_gflops": {str(d): r / 1e9 for d, r in gemm.items()},
            "gemm_shape": gemm_shape, "load": os.getloadavg()[0], "rows": rows}


# --- VQGAN ------------------------------------------------------------------------------------------
VQ_SIZE, VQ_BATCH, VQ_CODES, VQ_DIM = 64, 4, 1024, 256
DDCONFIG = {"double_z": False, "z_channels": VQ_DIM, "resolution": VQ_SIZE, "in_channels": 3, "out_ch": 3, "ch": 64,
            "ch_mult": [1, 1, 2, 2, 4], "num_res_blocks": 2, "attn_resolutions": [16], "dropout": 0.0}


def _taming_vqmodel(path: str) -> nn.Module:
    """taming's ``VQModel`` with its training-only imports (Lightning, ``main``) stubbed."""
    sys.path.insert(0, path)
    lightning = types.ModuleType("pytorch_lightning")
    lightning.LightningModule = nn.Module  # type: ignore[attr-defined]
    main = types.ModuleType("main")
    main.instantiate_from_config = lambda config: nn.Identity()  # type: ignore[attr-defined]
    sys.modules.setdefault("pytorch_lightning", lightning)
    sys.modules.setdefault("main", main)
    from taming.models.vqgan import VQModel

    torch.manual_seed(0)
    model = VQModel(DDCONFIG, lossconfig={"target": "unused"}, n_embed=VQ_CODES, embed_dim=VQ_DIM).train()
    # taming's default legacy=True puts beta on the codebook term instead of the commitment term (its README
    # notes the bug); the paper's form, which ours implements, makes the two loss curves comparable
    model.quantize.legacy = False
    return model


def vqgan_variants(taming: str, with_compile: bool) -> tuple[list[Variant], Step]:
    from vq_tokenizers.converters.taming import taming_state_to_vqgan

    peer = _taming_vqmodel(taming)
    ours_template, _ = taming_state_to_vqgan(peer.state_dict(), image_size=VQ_SIZE, source="taming VQModel")

    def peer_step_factory() -> Step:
        model = copy.deepcopy(peer)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.5, 0.9))

        def step(x: torch.Tensor, _: torch.Tensor | None) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            dec, qloss = model(x)
            loss = (x - dec).abs().mean() + qloss.mean()
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    def ours_step_factory(precision: str, compiled: bool, channels_last: bool = False) -> Step:
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = copy.deepcopy(ours_template).train().to(memory_format=fmt)
        net = maybe_compile(model, compiled)
        opt = adam(model.parameters(), device="cpu", lr=1e-4, betas=(0.5, 0.9))

        def step(x: torch.Tensor, _: torch.Tensor | None) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            x = x.contiguous(memory_format=fmt)
            with autocast(precision, x.device):
                out = net(x)
                loss = (x - out.recon.float()).abs().mean() + out.quant_loss.float()
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    variants = [Variant("taming VQModel fp32", peer_step_factory()), Variant("ours fp32", ours_step_factory("fp32", False)),
                Variant("ours bf16", ours_step_factory("bf16", False), torch.bfloat16),
                Variant("ours fp32 channels_last", ours_step_factory("fp32", False, True)),
                Variant("ours bf16 channels_last", ours_step_factory("bf16", False, True), torch.bfloat16)]
    if with_compile:
        variants += [Variant("ours fp32 + compile", ours_step_factory("fp32", True)),
                     Variant("ours bf16 + compile", ours_step_factory("bf16", True), torch.bfloat16),
                     Variant("ours bf16 + compile + c_last", ours_step_factory("bf16", True, True), torch.bfloat16)]
    return variants, ours_step_factory("fp32", False)


def vqgan_batches(n: int) -> list[tuple[torch.Tensor, None]]:
    g = torch.Generator().manual_seed(1)
    low = torch.rand(n, VQ_BATCH, 3, 8, 8, generator=g) * 2 - 1  # smooth images: L1 moves in a few steps
    return [(F.interpolate(b, size=VQ_SIZE, mode="bilinear"), None) for b in low]


# --- AR -----------------------------------------------------------------------------------------------
AR_LAYERS, AR_DIM, AR_HEADS, AR_GRID, AR_BATCH, AR_CLASSES = 8, 512, 8, 16, 8, 1000


def _llamagen_gpt(path: str, vocab: int) -> nn.Module:
    sys.path.insert(0, path)
    from autoregressive.models.gpt import ModelArgs, Transformer

    torch.manual_seed(0)
    args = ModelArgs(dim=AR_DIM, n_layer=AR_LAYERS, n_head=AR_HEADS, vocab_size=vocab, num_classes=AR_CLASSES,
                     block_size=AR_GRID**2, token_dropout_p=0.0, resid_dropout_p=0.0, ffn_dropout_p=0.0,
                     class_dropout_prob=0.1)  # > 0 keeps the null-class row; the drop itself is switched off below
    model = Transformer(args)
    model.cls_embedding.dropout_prob = 0.0
    with torch.no_grad():  # LlamaGen zero-inits the head; random weights give a non-degenerate loss
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0.0, 0.02)
    return model.train()


def ar_variants(llamagen: str, vocab: int, with_compile: bool) -> tuple[list[Variant], Step]:
    from vq_ar import ARTransformer
    from vq_ar.convert_llamagen import infer_llamagen_config, llamagen_state_to_ar
    from vq_ar.training import param_groups, token_loss

    peer = _llamagen_gpt(llamagen, vocab)
    state = {k: v for k, v in peer.state_dict().items()}
    config = infer_llamagen_config(state, n_head=AR_HEADS, grid=AR_GRID)
    config = config.model_copy(update={"token_dropout": 0.0, "resid_dropout": 0.0, "ffn_dropout": 0.0, "class_dropout": 0.0})
    template = ARTransformer(config)
    template.load_state_dict(llamagen_state_to_ar(state, config))

    def peer_step_factory() -> Step:
        model = copy.deepcopy(peer)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        other = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": other, "weight_decay": 0.0}],
                                lr=1e-4, betas=(0.9, 0.95))

        def step(tokens: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            _, loss = model(idx=tokens[:, :-1], cond_idx=labels, targets=tokens)
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    def ours_step_factory(precision: str, compiled: bool) -> Step:
        model = copy.deepcopy(template).train()
        loss_fn = maybe_compile(token_loss, compiled)
        opt = adam(param_groups(model, 0.05), device="cpu", decoupled=True, lr=1e-4, betas=(0.9, 0.95))

        def step(tokens: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
            opt.zero_grad(set_to_none=True)
            with autocast(precision, tokens.device):
                loss, _ = loss_fn(model, tokens, labels)
            loss.backward()
            opt.step()
            return loss.detach()

        return step

    variants = [Variant("LlamaGen GPT fp32", peer_step_factory()), Variant("ours fp32", ours_step_factory("fp32", False)),
                Variant("ours bf16", ours_step_factory("bf16", False), torch.bfloat16)]
    if with_compile:
        variants += [Variant("ours fp32 + compile", ours_step_factory("fp32", True)),
                     Variant("ours bf16 + compile", ours_step_factory("bf16", True), torch.bfloat16)]
    return variants, ours_step_factory("fp32", False)


def ar_batches(n: int, vocab: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randint(0, vocab, (AR_BATCH, AR_GRID**2), generator=g), torch.randint(0, AR_CLASSES, (AR_BATCH,), generator=g))
            for _ in range(n)]


def check_first_losses(variants: list[Variant], rtol: float) -> None:
    """Same weights, same batch: every fp32 variant's first loss equals the peer's (bf16 within ``rtol``)."""
    peer = variants[0].losses[0]
    for v in variants[1:]:
        tol = 1e-4 if v.dtype == torch.float32 else rtol
        if abs(v.losses[0] - peer) > tol * abs(peer):
            raise AssertionError(f"{v.name}: first loss {v.losses[0]:.6f} != peer's {peer:.6f} (same weights and batch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--taming", help="a taming-transformers checkout (needed for --only vqgan)")
    parser.add_argument("--llamagen", help="a LlamaGen checkout (needed for --only ar)")
    parser.add_argument("--only", nargs="+", choices=["vqgan", "ar"], default=["vqgan", "ar"])
    parser.add_argument("--vqgan-threads", type=int, default=2)
    parser.add_argument("--ar-threads", type=int, default=1)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=7, help="timed steps per variant (interleaved)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant first (compilation)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip the torch.compile variants")
    parser.add_argument("--vqgan-tolerance", type=float, default=0.05,
                        help="largest relative gap of a VQGAN loss curve to taming's fp32 one (bf16 moves a few codes: ~3%%)")
    parser.add_argument("--ar-tolerance", type=float, default=1e-3, help="the same for the AR cross entropy (bf16: ~1e-5)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    results = []
    print(f"torch {torch.__version__}, {platform.machine()} {platform.processor()}, {os.cpu_count()} CPUs")
    if "vqgan" in args.only:
        if not args.taming:
            parser.error("--taming PATH is needed for the vqgan benchmark")
        torch.set_num_threads(args.vqgan_threads)
        variants, plain = vqgan_variants(args.taming, args.compile)
        batches = vqgan_batches(args.warmup + args.repeats)
        flops = step_flops(plain, *batches[0])
        run_interleaved(variants, batches, args.warmup)
        check_first_losses(variants, rtol=0.02)
        shape = (VQ_BATCH * VQ_SIZE * VQ_SIZE, 64 * 9, 64)  # the 3x3 conv at full resolution as im2col GEMM
        gemm = {d: gemm_rate(*shape, d) for d in (torch.float32, torch.bfloat16)}
        title = (f"VQGAN training step: {VQ_SIZE} px, ch 64 f16 -> 4x4, {VQ_CODES} x {VQ_DIM} codes, batch {VQ_BATCH}, "
                 f"L1 + codebook loss, Adam, {args.vqgan_threads} threads")
        results.append(report(title, variants, flops, gemm, shape, args.vqgan_tolerance))
    if "ar" in args.only:
        if not args.llamagen:
            parser.error("--llamagen PATH is needed for the ar benchmark")
        torch.set_num_threads(args.ar_threads)
        variants, plain = ar_variants(args.llamagen, args.vocab, args.compile)
        batches = ar_batches(args.warmup + args.repeats, args.vocab)
        flops = step_flops(plain, *batches[0])
        run_interleaved(variants, batches, args.warmup)
        check_first_losses(variants, rtol=0.01)
        shape = (AR_BATCH * AR_GRID**2, AR_DIM, 4 * AR_DIM)  # the FFN projection of every token
        gemm = {d: gemm_rate(*shape, d) for d in (torch.float32, torch.bfloat16)}
        title = (f"AR training step: {AR_LAYERS} layers x {AR_DIM}, vocab {args.vocab}, {AR_GRID}x{AR_GRID} tokens, "
                 f"batch {AR_BATCH}, AdamW, {args.ar_threads} thread(s)")
        results.append(report(title, variants, flops, gemm, shape, args.ar_tolerance))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
