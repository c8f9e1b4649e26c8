"""Full-scale training steps and sampling on a GPU: images/s, tokens/s and model FLOP utilisation (MFU).

Workloads (bf16 autocast, fp32 master weights, fused AdamW, optional ``--compile``), each warmed up and
then timed over ``--steps`` steps with CUDA synchronisation:

==============  ==========================================================================================
``vqgan``       VQGAN f16 at 256 px (taming/LlamaGen VQ-16 shape: ch 128, ch_mult (1, 1, 2, 2, 4), 2 res
                blocks, 16384 x 8 codes), L1 + codebook loss, Adam - images/s
``vqkd``        VQ-KD ViT-B/16 at 224 (the seed's encoder, 1-block decoder, 8192 x 32 cosine codes), cosine
                loss to a fixed random 512-d teacher target (the teacher forward is not timed) - images/s
``gpt-b``       LlamaGen GPT-B (12 x 768) training step on 16x16 tokens, vocab 16384 - tokens/s
``gpt-l``       LlamaGen GPT-L (24 x 1024) likewise - tokens/s
``sample-b/l``  ``vq_ar.generate`` with the static KV cache, CFG 1.75 (2B rows), 256 tokens - tokens/s
==============  ==========================================================================================

MFU = counted model FLOPs (``torch.utils.flop_counter`` on one step: matmuls, convolutions and attention,
forward + backward) / time / the GPU's dense bf16 peak.  The peak is looked up by device name (``PEAKS``)
or given with ``--peak`` (TFLOP/s).  Without a GPU the script stops with a message; ``--dry-run`` runs every
workload at CPU-sized shapes (the same code paths, a few seconds each) to check the script itself.

    .venv/bin/python benchmarks/gpu.py [--only vqgan gpt-l sample-l] [--batch-scale 1] [--compile] [--peak 989]
    .venv/bin/python benchmarks/gpu.py --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from vq_core.acceleration import adam, autocast, maybe_compile

PEAKS: dict[str, float] = {  # dense bf16 tensor-core TFLOP/s (no sparsity), from the vendors' data sheets
    "H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0, "H800": 989.0,
    "GH200": 989.0, "B200": 2250.0, "B100": 1750.0, "A100": 312.0, "A800": 312.0, "A10G": 70.0, "A10": 125.0,
    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A6000": 155.0, "RTX 6000 Ada": 365.0, "4090": 165.0, "3090": 71.0,
}


def peak_tflops(name: str) -> float | None:
    """The dense bf16 peak of the device called ``name`` (longest matching table key), or None."""
    matches = [key for key in PEAKS if key.lower() in name.lower()]
    return PEAKS[max(matches, key=len)] if matches else None


@dataclass
class Workload:
    name: str
    unit: str  # what one step produces: "images" or "tokens"
    per_step: int
    step: Callable[[], Any]
    count_flops: bool = True


def counted_flops(fn: Callable[[], Any]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def timed_steps(fn: Callable[[], Any], steps: int, device: torch.device) -> float:
    """Seconds per step (mean over ``steps``, after the caller's warm-up)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    tic = time.perf_counter()
    for _ in range(steps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - tic) / steps


# --- workloads ------------------------------------------------------------------------------------------
def vqgan_workload(device: torch.device, batch: int, dry: bool, compiled: bool, precision: str) -> Workload:
    from vq_tokenizers import build_tokenizer

    size = 32 if dry else 256
    config = {"image_size": size, "ch": 32 if dry else 128, "ch_mult": (1, 1, 2, 2, 4), "num_res_blocks": 1 if dry else 2,
              "attn_resolutions": (16,), "z_channels": 32 if dry else 256, "quantizer": {"codebook_size": 1024 if dry else 16384, "dim": 8}}
    model = build_tokenizer("vqgan", config).to(device).train()
    model.load_codebook(torch.randn(model.codebook_size, 8, device=device))
    net = maybe_compile(model, compiled)
    opt = adam(model.parameters(), device=device, lr=1e-4, betas=(0.5, 0.9))
    images = torch.rand(batch, 3, size, size, device=device) * 2 - 1

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(precision, device):
            out = net(images)
            loss = (images - out.recon.float()).abs().mean() + out.quant_loss.float()
        loss.backward()
        opt.step()

    return Workload(f"VQGAN f16 {size} px", "images", batch, step)


def vqkd_workload(device: torch.device, batch: int, dry: bool, compiled: bool, precision: str) -> Workload:
    from vq_tokenizers.vqkd import VQKD, VQKDConfig, beit_quantizer, cosine_distance_loss

    size, patch, dim, depth, heads = (32, 8, 64, 2, 2) if dry else (224, 16, 768, 12, 12)
    grid = size // patch
    model = VQKD(VQKDConfig(
        encoder={"image_size": size, "patch_size": patch, "dim": dim, "depth": depth, "heads": heads},
        decoder={"image_size": grid, "patch_size": 1, "in_channels": 32, "dim": dim, "depth": 1, "heads": heads},
        quantizer=beit_quantizer(1024 if dry else 8192, 32), target_dim=512,
    )).to(device).train()
    net = maybe_compile(model, compiled)
    opt = adam(model.parameters(), device=device, decoupled=True, lr=2e-4, betas=(0.9, 0.99), weight_decay=1e-4)
    images = torch.rand(batch, 3, size, size, device=device) * 2 - 1
    target = torch.randn(batch, grid * grid, 512, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(precision, device):
            out = net(images)
        loss = cosine_distance_loss(out.prediction, target) + out.quant_loss.float()
        loss.backward()
        opt.step()

    return Workload(f"VQ-KD ViT {depth}x{dim} {size} px", "images", batch, step)


def _gpt(size: str, dry: bool, device: torch.device) -> Any:
    from vq_ar import ARTransformer, ar_config

    size = "nano" if dry else size
    config = ar_config(size, vocab_size=512 if dry else 16384, num_classes=1000, grid=(4, 4) if dry else (16, 16),
                       token_dropout=0.0, resid_dropout=0.0, ffn_dropout=0.0)
    model = ARTransformer(config).to(device)
    with torch.no_grad():
        model.output.weight.normal_(0, 0.02)  # the zero-initialised head would give a degenerate softmax
    return model


def gpt_train_workload(size: str, device: torch.device, batch: int, dry: bool, compiled: bool, precision: str) -> Workload:
    from vq_ar.training import param_groups, token_loss

    model = _gpt(size, dry, device).train()
    loss_fn = maybe_compile(token_loss, compiled)
    opt = adam(param_groups(model, 0.05), device=device, decoupled=True, lr=1e-4, betas=(0.9, 0.95))
    n = model.seq_len
    tokens = torch.randint(0, model.config.vocab_size, (batch, n), device=device)
    labels = torch.randint(0, 1000, (batch,), device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(precision, device):
            loss, _ = loss_fn(model, tokens, labels)
        loss.backward()
        opt.step()

    return Workload(f"GPT-{size} train ({model.config.n_layer}x{model.config.dim})", "tokens", batch * n, step)


def gpt_sample_workload(size: str, device: torch.device, batch: int, dry: bool, precision: str) -> tuple[Workload, torch.nn.Module]:
    from vq_ar import SamplingConfig, generate

    model = _gpt(size, dry, device).eval()
    if precision != "fp32" and (precision == "bf16" or device.type == "cuda"):
        model = model.to(torch.bfloat16)
    labels = torch.arange(batch, device=device) % 1000
    sampling = SamplingConfig(cfg_scale=1.75)

    def step() -> None:
        generate(model, labels, sampling=sampling, generator=torch.Generator(device=device).manual_seed(0))

    # sampling FLOPs: 2 x weights x rows per token (the weight matmuls); counted by hand, attention aside
    return Workload(f"GPT-{size} sample cfg 1.75 ({model.config.n_layer}x{model.config.dim})", "tokens", batch * model.seq_len,
                    step, count_flops=False), model


WORKLOADS = ("vqgan", "vqkd", "gpt-b", "gpt-l", "sample-b", "sample-l")
DEFAULT_BATCH = {"vqgan": 32, "vqkd": 128, "gpt-b": 256, "gpt-l": 64, "sample-b": 256, "sample-l": 64}


def build(name: str, device: torch.device, batch: int, dry: bool, compiled: bool, precision: str) -> tuple[Workload, float | None]:
    """The workload and, for sampling, its hand-counted FLOPs per step (None: count them with FlopCounterMode)."""
    if name == "vqgan":
        return vqgan_workload(device, batch, dry, compiled, precision), None
    if name == "vqkd":
        return vqkd_workload(device, batch, dry, compiled, precision), None
    if name.startswith("gpt-"):
        return gpt_train_workload(name[-1].upper(), device, batch, dry, compiled, precision), None
    workload, model = gpt_sample_workload(name[-1].upper(), device, batch, dry, precision)
    weights = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    return workload, 2.0 * weights * 2 * batch * model.seq_len  # 2B rows with guidance


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--batch-scale", type=float, default=1.0, help="multiply every default batch (out of memory: 0.5)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per workload (sampling: runs)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--precision", choices=["bf16", "fp32", "auto"], default="bf16")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model / loss step")
    parser.add_argument("--peak", type=float, default=None, help="dense bf16 peak in TFLOP/s (default: looked up by name)")
    parser.add_argument("--dry-run", action="store_true", help="CPU-sized shapes on whatever device there is (checks the script)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.dry_run:
        sys.exit("Error: no CUDA GPU is visible (torch.cuda.is_available() is False); this benchmark needs one - "
                 "run it on a GPU machine, or pass --dry-run to check the script at CPU-sized shapes")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run)"
    peak = args.peak if args.peak is not None else (peak_tflops(name) if device.type == "cuda" else None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    steps, warmup = (1, 1) if args.dry_run else (args.steps, args.warmup)
    print(f"{name}, torch {torch.__version__}, precision {args.precision}, compile {args.compile}, "
          f"peak {peak if peak is not None else 'unknown (pass --peak)'} TFLOP/s")
    print(f"{'workload':<40} {'batch':>6} {'ms/step':>9} {'throughput':>18} {'TFLOP/s':>8} {'MFU':>6}")
    rows = []
    for key in args.only:
        batch = 2 if args.dry_run else max(1, int(DEFAULT_BATCH[key] * args.batch_scale))
        workload, flops = build(key, device, batch, args.dry_run, args.compile, args.precision)
        for _ in range(warmup):
            workload.step()
        if flops is None:
            flops = counted_flops(workload.step)
        seconds = timed_steps(workload.step, steps, device)
        tflops = flops / seconds / 1e12
        mfu = f"{100 * tflops / peak:5.1f}%" if peak else "   n/a"
        rate = workload.per_step / seconds
        print(f"{workload.name:<40} {batch:>6} {1e3 * seconds:>9.1f} {rate:>10.1f} {workload.unit + '/s':<8} {tflops:>8.2f} {mfu:>6}", flush=True)
        rows.append({"workload": key, "name": workload.name, "batch": batch, "ms": 1e3 * seconds, f"{workload.unit}_per_s": rate,
                     "tflops": tflops, "mfu": tflops / peak if peak else None})
        del workload
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"device": name, "peak_tflops": peak, "args": vars(args), "rows": rows}, handle, indent=1)


if __name__ == "__main__":
    main()
