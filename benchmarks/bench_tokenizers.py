"""Tokenize throughput and training-step time of every tokenizer family vs. a naive baseline.

Each family at small scale (64 px images), in one run and on the same weights:

==========  ==============================================================================
``vqgan``   conv autoencoder ch 64, f8 (8x8 tokens), 16384 codes of dim 256, L2
``cvq``     the same, 8192 cosine codes with anchor re-initialisation
``fsq``     the same, FSQ levels (8, 8, 5, 5, 5) = 8000 codes (no search)
``vqkd``    ViT 2 x 128, patch 8 (8x8 tokens), 8192 x 32 cosine EMA codes, random CLIP teacher (64 px)
``cluster`` random CLIP teacher (64 px, 8x8 x 32) + 8192 centroids
``pixel``   conv decoder (ch 64, 4 levels) on the ``vqkd`` tokens
==========  ==============================================================================

* ``ours``  - as shipped: vq-core's nearest-code search (one matmul per block, chunked, two-level
  argmin), channels_last, bf16 autocast on CUDA;
* ``naive`` - the same network in fp32 and contiguous memory, with the nearest-code search done by an
  unchunked ``torch.cdist`` over the whole codebook (FSQ has no search: fp32 + contiguous only).

Tokenize = ``model.encode`` on pre-decoded batches (images/s).  Train step = one optimizer step:
:class:`vq_tokenizers.training.Trainer` for the conv families and the pixel decoder (L1 + LPIPS on
random VGG weights + adaptive hinge GAN, then the discriminator), :class:`VQKDTrainer` for VQ-KD
(teacher forward + cosine loss); a Cluster tokenizer has no gradient step, its column times one
mini-batch k-means update on a batch's teacher features (``MiniBatchKMeans.partial_fit`` vs. the same
update with a cdist assignment).

    .venv/bin/python benchmarks/bench_tokenizers.py [--device cuda] [--batch 16] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from timing import timed
from vq_core import MiniBatchKMeans
from vq_tokenizers import VQKD, ClusterConfig, ClusterTokenizer, PixelDecoderTokenizer, build_tokenizer
from vq_tokenizers.losses import LossConfig
from vq_tokenizers.teachers import load_teacher
from vq_tokenizers.training import TrainConfig, Trainer
from vq_tokenizers.vqkd import VQKDConfig, beit_quantizer
from vq_tokenizers.training.vqkd import VQKDTrainConfig, VQKDTrainer

SIZE = 64
SMALL = {"image_size": SIZE, "ch": 64, "ch_mult": (1, 1, 2, 2), "num_res_blocks": 1, "attn_resolutions": (8,), "z_channels": 64}
CONV_FAMILIES: dict[str, dict[str, Any]] = {
    "vqgan": {**SMALL, "quantizer": {"codebook_size": 16384, "dim": 256}},
    "cvq": {**SMALL, "quantizer": {"codebook_size": 8192, "dim": 256, "distance": "cosine", "anchor_reinit": True}},
    "fsq": {**SMALL, "quantizer": {"levels": (8, 8, 5, 5, 5)}, "proj_channels": 64},
}
FAMILIES = (*CONV_FAMILIES, "vqkd", "cluster", "pixel")
TEACHER = "random-clip:tiny"
CODES = 8192


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
        indices = cdist_nearest(flat, codes)
        q = codes[indices]
        loss = F.mse_loss(q, flat.detach()) + 0.25 * F.mse_loss(flat, q.detach())
        q = flat + (q - flat).detach()
        return q.view(b, h, w, c).permute(0, 3, 1, 2), indices.view(b, h, w), {"loss": loss}

    def dequantize(self, indices: torch.Tensor) -> torch.Tensor:
        return self._codes()[indices].permute(0, 3, 1, 2)


def cdist_nearest(x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Nearest code by one unchunked (N, K) ``torch.cdist`` and ``argmin``."""
    return torch.cdist(x, codes).argmin(1)


class NaiveCluster(nn.Module):
    """A Cluster tokenizer whose search is :func:`cdist_nearest` over the unit centroids."""

    def __init__(self, model: ClusterTokenizer) -> None:
        super().__init__()
        self.model = model

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        features = self.model.features(images)
        b, n, d = features.shape
        return cdist_nearest(features.reshape(b * n, d), self.model.codebook).view(b, *self.model.grid)


def naive_copy(model: nn.Module) -> nn.Module:
    """Same weights; every nearest-code search replaced by an unchunked cdist (FSQ: unchanged)."""
    if isinstance(model, ClusterTokenizer):
        return NaiveCluster(model)
    naive = copy.deepcopy(model)
    holder = naive.source if isinstance(naive, PixelDecoderTokenizer) else naive
    if holder.family in ("vqgan", "cvq", "vqkd"):
        quantizer = holder.quantizer
        holder.quantizer = CdistQuantizer(quantizer.codes().detach(), cosine=quantizer.config.distance == "cosine")
    return naive


def _tokenize_rate(model: nn.Module, images: torch.Tensor, *, fast: bool, repeats: int) -> tuple[float, torch.Tensor]:
    device = images.device
    model = model.to(device, memory_format=torch.channels_last if fast else torch.contiguous_format).eval()
    batch = images.contiguous(memory_format=torch.channels_last) if fast else images.contiguous()
    autocast = fast and device.type == "cuda"

    def run() -> torch.Tensor:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return model.encode(batch)

    seconds, tokens = timed(run, device, repeats)
    return images.shape[0] / seconds, tokens


def _conv_train_step(model: nn.Module, images: torch.Tensor, vgg: Path, *, fast: bool, repeats: int, out: Path) -> float:
    config = TrainConfig(
        steps=10**6, batch_size=images.shape[0], lr=1e-4, disc_start=0, device=str(images.device),
        precision="auto" if fast else "fp32", channels_last=fast,
    )
    trainer = Trainer(model, [], config, out, loss=LossConfig(lpips_vgg_weights=str(vgg)))
    return timed(lambda: trainer.train_step([images]), images.device, repeats)[0]


def _vqkd_train_step(model: nn.Module, teacher: nn.Module, images: torch.Tensor, *, fast: bool, repeats: int, out: Path) -> float:
    config = VQKDTrainConfig(batch_size=images.shape[0], device=str(images.device), precision="auto" if fast else "fp32")
    trainer = VQKDTrainer(model, teacher, [], config, out)
    return timed(lambda: trainer.train_step(images), images.device, repeats)[0]


def _kmeans_step(features: torch.Tensor, *, fast: bool, repeats: int) -> float:
    """One mini-batch k-means update of CODES centroids: vq-core's, or the same update on a cdist assignment."""
    km = MiniBatchKMeans(CODES, metric="cosine", seed=0, n_init=1)
    km.partial_fit(torch.randn(CODES, features.shape[1], generator=torch.Generator().manual_seed(0)).to(features.device))
    if fast:
        return timed(lambda: km.partial_fit(features), features.device, repeats)[0]
    centroids, counts = km.centroids.clone(), km.counts.clone()

    def naive() -> None:
        assign = cdist_nearest(features, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assign, features)
        batch = torch.bincount(assign, minlength=CODES).to(counts.dtype)
        total = counts + batch
        hit = batch > 0
        centroids[hit] = F.normalize(
            centroids[hit] * (counts[hit] / total[hit]).to(centroids.dtype)[:, None] + sums[hit] / total[hit].to(centroids.dtype)[:, None],
            dim=1,
        )
        counts.copy_(total)

    return timed(naive, features.device, repeats)[0]


def build_models(device: torch.device) -> dict[str, nn.Module]:
    """One model per family, seeded, with spread (trained-like) codebooks."""
    teacher = load_teacher(TEACHER, image_size=SIZE)
    models: dict[str, nn.Module] = {}
    for family, config in CONV_FAMILIES.items():
        torch.manual_seed(0)
        model = build_tokenizer(family, config)
        if family != "fsq":  # the +-1/K init makes every code a near-tie
            model.load_codebook(torch.randn(model.codebook_size, model.config.quantizer.dim))
        models[family] = model
    torch.manual_seed(0)
    vqkd = VQKD(VQKDConfig(
        encoder={"image_size": SIZE, "patch_size": 8, "dim": 128, "depth": 2, "heads": 2},
        decoder={"image_size": SIZE // 8, "patch_size": 1, "in_channels": 32, "dim": 128, "depth": 1, "heads": 2},
        quantizer=beit_quantizer(CODES, 32), target_dim=teacher.dim,
    ))
    vqkd.quantizer.load_codebook(F.normalize(torch.randn(CODES, 32), dim=1))
    models["vqkd"] = vqkd
    cluster = ClusterTokenizer(ClusterConfig(teacher=teacher.config, codebook_size=CODES, image_size=SIZE), teacher=teacher)
    cluster.load_codebook(torch.randn(CODES, teacher.dim))
    models["cluster"] = cluster
    models["pixel"] = PixelDecoderTokenizer.from_source(
        copy.deepcopy(vqkd), ch=64, ch_mult=(1, 1, 2, 2), num_res_blocks=1, z_channels=64, attn_resolutions=(8,)
    )
    models["teacher"] = teacher
    return {k: v.to(device) for k, v in models.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    models = build_models(device)
    teacher = models["teacher"]
    images = (torch.rand(args.batch, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1)) * 2 - 1).to(device)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        import torchvision

        torch.manual_seed(0)
        vgg = Path(tmp) / "vgg16.pth"  # random VGG16 trunk: LPIPS costs the same as with real weights
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
        torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, vgg)
        for family in args.families:
            model = models[family]
            naive = naive_copy(model)
            row: dict[str, Any] = {"family": family, "codebook": model.codebook_size}
            row["tokenize_ours"], ours_tokens = _tokenize_rate(model, images, fast=True, repeats=args.repeats)
            row["tokenize_naive"], naive_tokens = _tokenize_rate(naive, images, fast=False, repeats=args.repeats)
            row["same_tokens"] = float((ours_tokens == naive_tokens).float().mean())
            steps: dict[str, float] = {}
            for name, fast, net in (("ours", True, model), ("naive", False, naive)):
                out = Path(tmp) / f"{family}-{name}"
                if family == "cluster":
                    f = F.normalize(teacher.features(images).flatten(0, 1), dim=1)
                    steps[name] = _kmeans_step(f, fast=fast, repeats=args.repeats)
                elif family == "vqkd":
                    steps[name] = _vqkd_train_step(copy.deepcopy(net), teacher, images, fast=fast, repeats=args.repeats, out=out)
                else:
                    steps[name] = _conv_train_step(copy.deepcopy(net), images, vgg, fast=fast, repeats=args.repeats, out=out)
            row["train_ours_ms"], row["train_naive_ms"] = 1e3 * steps["ours"], 1e3 * steps["naive"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = (
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}, device {device}, "
        f"threads {torch.get_num_threads()}, batch {args.batch}, {SIZE} px"
    )
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
