"""Tokenize throughput and training-step time of the VQGAN / CVQ-VAE / FSQ tokenizers vs. a naive baseline.

For each family, at small scale (default: 64 px images, ch 64, f8 -> 8x8 tokens, 16384 / 8192 codes of
dim 256 for VQGAN / CVQ-VAE, 8000 FSQ codes), in one run and on the same weights:

* ``ours``  - the model as shipped: vq-core's quantizer (one-matmul distances, chunked), channels_last,
  bf16 autocast on CUDA;
* ``naive`` - the same network in fp32 and contiguous memory, with the nearest-code search done by an
  unchunked ``torch.cdist`` over the whole codebook (FSQ has no search: fp32 + contiguous only).

Tokenize = ``model.encode`` on pre-decoded batches (images/s).  Train step = one full optimizer step of
:class:`vq_tokenizers.training.Trainer` (generator with L1 + LPIPS on random VGG weights + adaptive
hinge GAN, then the discriminator).

    .venv/bin/python benchmarks/tokenizers.py [--device cuda] [--batch 16] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vq_tokenizers import build_tokenizer
from vq_tokenizers.losses import LossConfig
from vq_tokenizers.training import TrainConfig, Trainer

SMALL = {"image_size": 64, "ch": 64, "ch_mult": (1, 1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (8,), "z_channels": 64}
FAMILIES: dict[str, dict[str, Any]] = {
    "vqgan": {**SMALL, "quantizer": {"codebook_size": 16384, "dim": 256}},
    "cvq": {**SMALL, "quantizer": {"codebook_size": 8192, "dim": 256, "distance": "cosine", "anchor_reinit": True}},
    "fsq": {**SMALL, "quantizer": {"levels": (8, 8, 5, 5, 5)}, "proj_channels": 64},
}


class CdistQuantizer(nn.Module):
    """The textbook VQ layer: full (N, K) ``cdist`` matrix, argmin, codebook + 0.25 * commitment loss."""

    def __init__(self, codebook: torch.Tensor, cosine: bool) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook.clone())
        self.cosine = cosine

    def _codes(self) -> torch.Tensor:
        return F.normalize(self.codebook, dim=-1) if self.cosine else self.codebook

    def quantize(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        b, c, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, c)
        if self.cosine:
            flat = F.normalize(flat, dim=-1)
        codes = self._codes()
        indices = torch.cdist(flat, codes).argmin(1)
        q = codes[indices]
        loss = F.mse_loss(q, flat.detach()) + 0.25 * F.mse_loss(flat, q.detach())
        q = flat + (q - flat).detach()
        return q.view(b, h, w, c).permute(0, 3, 1, 2), indices.view(b, h, w), {"loss": loss}

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        return self._codes()[indices].permute(0, 3, 1, 2)


def naive_copy(model: nn.Module) -> nn.Module:
    """Same weights; the codebook search replaced by :class:`CdistQuantizer` (VQ families only)."""
    naive = copy.deepcopy(model)
    if model.family in ("vqgan", "cvq"):
        k = model.codebook_size
        codebook = model.dequantize(torch.arange(k).view(1, 1, k)).detach()[0, :, 0].t()  # (K, dim) as decoded
        naive.quantizer = CdistQuantizer(codebook, cosine=model.config.quantizer.distance == "cosine")
    return naive


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` runs after one warm-up run."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - tic)
    return best


def _tokenize_rate(model: nn.Module, images: torch.Tensor, *, fast: bool, repeats: int) -> float:
    device = images.device
    model = model.to(device, memory_format=torch.channels_last if fast else torch.contiguous_format).eval()
    batch = images.contiguous(memory_format=torch.channels_last) if fast else images.contiguous()
    autocast = fast and device.type == "cuda"

    def run() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return model.encode(batch)

    return images.shape[0] / _timed(run, device, repeats)


def _train_step_time(model: nn.Module, images: torch.Tensor, vgg: Path, *, fast: bool, repeats: int, out: Path) -> float:
    config = TrainConfig(
        steps=10**6, batch_size=images.shape[0], lr=1e-4, disc_start=0, device=str(images.device),
        precision="auto" if fast else "fp32", channels_last=fast,
    )
    loss = LossConfig(lpips_vgg_weights=str(vgg))
    trainer = Trainer(model, [], config, out, loss=loss)
    return _timed(lambda: trainer.train_step([images]), images.device, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import torchvision

        torch.manual_seed(0)
        vgg = Path(tmp) / "vgg16.pth"  # random VGG16 trunk: LPIPS costs the same as with real weights
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
        torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg)
        for family in args.families:
            torch.manual_seed(0)
            model = build_tokenizer(family, FAMILIES[family])
            naive = naive_copy(model)
            images = (torch.rand(args.batch, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
            row = {"family": family, "codebook": model.codebook_size}
            row["tokenize_ours"] = _tokenize_rate(model, images, fast=True, repeats=args.repeats)
            row["tokenize_naive"] = _tokenize_rate(naive, images, fast=False, repeats=args.repeats)
            agree = (model.encode(images) == naive.to(device, memory_format=torch.contiguous_format).encode(images.contiguous()))
            row["same_tokens"] = float(agree.float().mean())
            row["train_ours_ms"] = 1e3 * _train_step_time(model, images, vgg, fast=True, repeats=args.repeats, out=Path(tmp) / f"{family}-o")
            row["train_naive_ms"] = 1e3 * _train_step_time(naive, images, vgg, fast=False, repeats=args.repeats, out=Path(tmp) / f"{family}-n")
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, batch {args.batch}, 64 px"
    print(f"\n{header}\n")
    print("| family | codes | tokenize ours (img/s) | naive (img/s) | speed-up | same tokens | train step ours (ms) | naive (ms) | speed-up |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['family']} | {r['codebook']} | {r['tokenize_ours']:.0f} | {r['tokenize_naive']:.0f} | "
            f"{r['tokenize_ours'] / r['tokenize_naive']:.2f}x | {100 * r['same_tokens']:.1f}% | {r['train_ours_ms']:.0f} | "
            f"{r['train_naive_ms']:.0f} | {r['train_naive_ms'] / r['train_ours_ms']:.2f}x |"
        )
    if args.json:
        args.json.write_text(json.dumps({"setup": header, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
