"""``vq-eval``: FID reference caches, FID/IS of samples, and full tokenizer evaluations with reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vq_core.cli_common import RenamedOption, vq_cli
from vq_eval.names import RECONSTRUCTION_METRICS, RESIZES


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _source_options(batch_size: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Options every command that reads images shares."""

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        options = [
            click.option(
                "--image-size",
                type=click.IntRange(min=1),
                default=None,
                help="resize shorter side + centre crop to this size (shards: default the stored size)",
            ),
            click.option("--batch-size", default=batch_size, show_default=True, type=click.IntRange(min=1), help="images per forward batch"),
            click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N images"),
            click.option("--no-verify", is_flag=True, help="read image shards without checking their sha256 against the manifest"),
            click.option(
                "--inception-weights",
                type=click.Path(dir_okay=False),
                default=None,
                help="pt_inception-2015-12-05-6726825d.pth (default: $VQ_INCEPTION_WEIGHTS, ~/.cache/vq/)",
            ),
            click.option("--device", default=_default_device, show_default="cuda if available", help="torch device"),
            click.option(
                "--channels-last", is_flag=True, help="~1.4x faster Inception on CPU; features differ from pytorch-fid by ~1e-6 relative"
            ),
            click.option(
                "--resize",
                type=click.Choice(RESIZES),
                default=None,
                help="network input resize: pytorch-fid's, or tf1 (the TF graph's, as ADM's evaluator and torch-fidelity); "
                "default: the one --ref was made with, else pytorch-fid",
            ),
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@vq_cli("vq-eval", "vq_eval.weights:WeightsNotFoundError", "vq_eval.reference:ReferenceError", "vq_eval.sources:SourceError")
def main() -> None:
    """Image and tokenizer metrics: FID, IS, PSNR, SSIM, LPIPS, rFID, codebook usage."""


@main.command("fid-cache")
@click.argument("source", type=click.Path(exists=True))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="reference .npz to write")
@click.option(
    "--features/--no-features",
    default=True,
    show_default=True,
    help="also store the pool features (4 bytes x 2048 an image) for precision, recall and KID",
)
@_source_options(batch_size=50)
def fid_cache_command(
    source: str,
    out_path: str,
    features: bool,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    no_verify: bool,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
    resize: str | None,
) -> None:
    """Inception statistics of SOURCE (shard set, image folder, ADM .npz) -> reference .npz (FID, sFID, P/R, KID)."""
    from vq_eval.inception import load_fid_inception
    from vq_eval.sources import open_images
    from vq_eval.generation import reference_from_images

    batches = open_images(source, batch_size=batch_size, image_size=image_size, limit=limit, verify=not no_verify)
    inception = load_fid_inception(inception_weights, device=device, channels_last=channels_last, resize=resize or "pytorch-fid")  # type: ignore[arg-type]
    reference = reference_from_images(inception, batches, keep_features=features)
    reference.save(out_path)
    click.echo(f"wrote {out_path}: {reference.n} images, {reference.mu.shape[0]}-d features ({inception.resize} resize)")


@main.command("fid")
@click.argument("generated", type=click.Path(exists=True))
@click.option("--ref", "ref_path", required=True, type=click.Path(dir_okay=False), help="reference .npz from `vq-eval fid-cache`")
@click.option(
    "--method",
    type=click.Choice(["eigh", "sqrtm"]),
    default="eigh",
    show_default=True,
    help="matrix square root: fast eigh, or pytorch-fid's sqrtm",
)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="also write the result as JSON")
@_source_options(batch_size=50)
def fid_command(
    generated: str,
    ref_path: str,
    method: str,
    out_path: str | None,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    no_verify: bool,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
    resize: str | None,
) -> None:
    """FID of the images in GENERATED (folder, shard set, ADM .npz, `vq-ar sample` output) against --ref."""
    from vq_eval.fid import evaluate_generation
    from vq_eval.inception import load_fid_inception
    from vq_eval.reference import ReferenceStats
    from vq_eval.sources import open_images
    from vq_eval.fid import small_sample_warning

    reference = ReferenceStats.load(ref_path)
    batches = open_images(generated, batch_size=batch_size, image_size=image_size, limit=limit, verify=not no_verify)
    reference.check_images(batches.meta, where="images")
    inception = load_fid_inception(inception_weights, device=device, channels_last=channels_last,
                                   resize=resize or reference.resize or "pytorch-fid")  # type: ignore[arg-type]  # fmt: skip
    result: dict[str, Any] = evaluate_generation(inception, batches, reference=reference, splits=0, fid_method=method)  # type: ignore[arg-type]
    warning = small_sample_warning(int(result["num_images"]))
    if warning:
        click.echo(f"Warning: {warning} (used {result['num_images']} images)", err=True)
    result.update(reference=reference.meta.get("source", ref_path), n_reference=reference.n,
                  inception_weights_sha256=inception.weights_sha256, preprocessing=inception.preprocessing,
                  transform=batches.meta.get("transform"))  # fmt: skip
    _emit(result, out_path)


@main.command("generation")
@click.argument("samples", type=click.Path(exists=True))
@click.option(
    "--ref",
    "ref_path",
    type=click.Path(exists=True),
    default=None,
    help="reference: vq-eval fid-cache .npz, ADM reference batch .npz, or an image folder/shard set (IS only without it)",
)
@click.option("--method", type=click.Choice(["eigh", "sqrtm"]), default="eigh", show_default=True, help="FID matrix square root")
@click.option("--split-size", default=5000, show_default=True, type=click.IntRange(min=1), help="Inception Score split size (ADM)")
@click.option("--nearest-k", default=3, show_default=True, type=click.IntRange(min=1), help="k of the precision/recall manifolds")
@click.option("--kid-subsets", default=100, show_default=True, type=click.IntRange(min=1), help="KID: random subsets averaged")
@click.option("--kid-subset-size", default=1000, show_default=True, type=click.IntRange(min=2), help="KID: images per subset")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="also write the result as JSON")
@_source_options(batch_size=50)
def generation_command(
    samples: str,
    ref_path: str | None,
    method: str,
    split_size: int,
    nearest_k: int,
    kid_subsets: int,
    kid_subset_size: int,
    out_path: str | None,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    no_verify: bool,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
    resize: str | None,
) -> None:
    """ADM's evaluation of SAMPLES (`vq-ar sample` output, ADM .npz, folder or shard set): FID, sFID, IS, Precision, Recall, KID."""
    from vq_eval.inception import load_fid_inception
    from vq_eval.report import write_metrics
    from vq_eval.sources import open_images
    from vq_eval.generation import evaluate_samples, format_generation_table, load_reference, reference_resize

    batches = open_images(samples, batch_size=batch_size, image_size=image_size, limit=limit, verify=not no_verify)
    chosen = resize or (reference_resize(ref_path) if ref_path else None) or "pytorch-fid"
    inception = load_fid_inception(inception_weights, device=device, channels_last=channels_last, resize=chosen)  # type: ignore[arg-type]
    reference = load_reference(ref_path, inception, batch_size=batch_size) if ref_path else None
    result = evaluate_samples(inception, batches, reference=reference, fid_method=method, split_size=split_size,  # type: ignore[arg-type]
                              nearest_k=nearest_k, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)  # fmt: skip
    for warning in result.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(format_generation_table(result))
    if out_path:
        write_metrics(out_path, result.as_json())
        click.echo(f"wrote {out_path}")


@main.command("tokenizer")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out", "--out-dir", "out_dir", cls=RenamedOption, old_names=("--out-dir",), type=click.Path(file_okay=False),
    default=None, help="report directory (default: <checkpoint dir>/eval-<source name>)"
)
@click.option(
    "--ref",
    "ref_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="reference .npz: rFID against it instead of against the originals",
)
@click.option("--metrics", default=",".join(RECONSTRUCTION_METRICS), show_default=True, help="comma-separated subset")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg", "squeeze"]), default="alex", show_default=True, help="LPIPS backbone")
@click.option(
    "--lpips-backbone",
    type=click.Path(dir_okay=False),
    default=None,
    help="torchvision backbone weights (default: $VQ_LPIPS_BACKBONE, ~/.cache/vq/, torch hub cache)",
)
@click.option(
    "--lpips-weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="LPIPS linear-layer weights (default: the ones shipped with lpips)",
)
@click.option("--no-quantize", is_flag=True, help="score float reconstructions instead of 8-bit-rounded ones")
@click.option("--examples", default=8, show_default=True, type=click.IntRange(min=0), help="original/reconstruction pairs in the grid")
@click.option(
    "--patch-images", default=64, show_default=True, type=click.IntRange(min=0), help="images sampled for the patches-per-token grid"
)
@click.option("--seed", default=0, show_default=True, help="seed of the example and patch picks")
@_source_options(batch_size=16)
def tokenizer_command(
    checkpoint: str,
    source: str,
    out_dir: str | None,
    ref_path: str | None,
    metrics: str,
    lpips_net: str,
    lpips_backbone: str | None,
    lpips_weights: str | None,
    no_quantize: bool,
    examples: int,
    patch_images: int,
    seed: int,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    no_verify: bool,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
    resize: str | None,
) -> None:
    """Every reconstruction metric of the tokenizer CHECKPOINT on SOURCE, with a JSON and HTML report."""
    from vq_eval.inception import load_fid_inception
    from vq_eval.reference import ReferenceStats
    from vq_eval.report import format_table
    from vq_eval.sources import open_images
    from vq_eval.perceptual import load_lpips
    from vq_eval.tokenizer_report import tokenizer_report

    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    from vq_tokenizers import load_tokenizer

    model = load_tokenizer(checkpoint, map_location=device)
    if not model.can_decode and set(chosen) - {"usage"}:
        click.echo(f"{checkpoint}: {model.family} has no pixel decoder; reporting codebook usage only", err=True)
        chosen = ["usage"]
    batches = open_images(source, batch_size=batch_size, image_size=image_size or model.image_size, limit=limit, verify=not no_verify)
    reference = ReferenceStats.load(ref_path) if ref_path else None
    if reference is not None and "rfid" in chosen:
        reference.check_images(batches.meta, where="images", transform=True)  # rFID: that split's crop and size only
    chosen_resize = resize or (reference.resize if reference is not None else None) or "pytorch-fid"
    inception = (
        load_fid_inception(inception_weights, device=device, channels_last=channels_last, resize=chosen_resize)  # type: ignore[arg-type]
        if "rfid" in chosen else None
    )  # fmt: skip
    lpips_model = (
        load_lpips(lpips_net, backbone_weights=lpips_backbone, linear_weights=lpips_weights, device=device)  # type: ignore[arg-type]
        if "lpips" in chosen else None
    )  # fmt: skip
    directory = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent / f"eval-{Path(source).resolve().name}"
    details = {
        "checkpoint": str(checkpoint), "family": model.family, "token_space": model.token_space_hash(),
        "codebook_size": model.codebook_size, **batches.meta,
    }
    result, report = tokenizer_report(
        model, batches, directory, metrics=chosen, inception=inception, lpips_model=lpips_model, reference=reference,
        quantize=not no_quantize, examples=examples, token_images=patch_images, seed=seed,
        title=f"{model.family} tokenizer: {Path(checkpoint).name} on {Path(source).name}", details=details,
    )  # fmt: skip
    click.echo(format_table(result))
    click.echo(f"report: {report}")


@main.command("probe")
@click.argument("tokenizer_ckpt", metavar="TOKENIZER", type=click.Path(exists=True, dir_okay=False))
@click.option("--train", "train_shards", required=True, type=click.Path(exists=True, file_okay=False), help="labelled image shards")
@click.option("--val", "val_shards", required=True, type=click.Path(exists=True, file_okay=False), help="labelled image shards")
@click.option("--preset", type=click.Choice(["seed", "cpu-small"]), default="seed", show_default=True,
              help="seed: LARS lr 1.6, 30k steps, batch 512 (configs/ic); cpu-small: 2000 steps, batch 64")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=None, help="override the preset's steps")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None, help="override the preset's LARS lr")
@click.option("--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="feature-extraction batch")
@click.option("--device", default=_default_device, show_default="cuda if available", help="torch device")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="also write the result as JSON")
def probe_command(
    tokenizer_ckpt: str, train_shards: str, val_shards: str, preset: str, steps: int | None, lr: float | None, batch_size: int,
    device: str, out_path: str | None,
) -> None:  # fmt: skip
    """Linear probe: top-1/top-5 of a linear head on the frozen TOKENIZER's quantized codes (seed configs/ic)."""
    from vq_eval.report import write_metrics
    from vq_data import image_loader, open_manifest
    from vq_eval.probe import PRESETS, linear_probe

    config = PRESETS[preset].model_copy(update={k: v for k, v in {"steps": steps, "lr": lr}.items() if v is not None})
    from vq_tokenizers import load_tokenizer

    model = load_tokenizer(tokenizer_ckpt, map_location=device)
    if not hasattr(model, "dequantize"):
        raise ValueError(f"tokenizer {tokenizer_ckpt} ({model.family}) has no code lookup (dequantize); the probe reads codes")
    classes = []
    for shards in (train_shards, val_shards):
        manifest = open_manifest(shards)
        if manifest.kind != "images" or not manifest.dataset.num_classes:
            raise ValueError(f"{shards}: the probe needs labelled image shards (kind images, dataset.num_classes), got {manifest.kind}")
        classes.append(manifest.dataset.num_classes)
    loaders = [image_loader(s, batch_size, model.image_size, train=False) for s in (train_shards, val_shards)]
    result = linear_probe(model, loaders[0], loaders[1], num_classes=max(classes), config=config, device=device)
    result.update(tokenizer=tokenizer_ckpt, train=train_shards, val=val_shards, preset=preset)
    _emit({k: v for k, v in result.items() if k != "schedule"}, None)
    if out_path:
        write_metrics(out_path, result)
        click.echo(f"wrote {out_path}")


def _emit(result: dict[str, Any], out_path: str | None) -> None:
    """Print the table, and write the JSON when asked."""
    from vq_eval.report import format_table, write_metrics

    click.echo(format_table(result))
    if out_path:
        write_metrics(out_path, result)
        click.echo(f"wrote {out_path}")
