"""``vq-eval``: FID reference caches, FID/IS of samples, and full tokenizer evaluations with reports."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import torch

from vq_core import CheckpointError, ManifestError
from vq_eval.fid import compute_reference, evaluate_generation
from vq_eval.inception import load_fid_inception
from vq_eval.reconstruction import RECONSTRUCTION_METRICS
from vq_eval.reference import ReferenceError, ReferenceStats
from vq_eval.report import format_table, write_metrics
from vq_eval.sources import SourceError, open_images
from vq_eval.weights import WeightsNotFoundError

_USER_ERRORS = (WeightsNotFoundError, ReferenceError, SourceError, ManifestError, CheckpointError, FileNotFoundError, ValueError)


@contextlib.contextmanager
def _user_errors() -> Iterator[None]:
    """Show expected failures (missing weights, bad sources) as one-line CLI errors, not tracebacks."""
    try:
        yield
    except _USER_ERRORS as err:
        raise click.ClickException(str(err)) from err


def _default_device() -> str:
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
            click.option("--batch-size", default=batch_size, show_default=True, type=click.IntRange(min=1)),
            click.option("--limit", type=click.IntRange(min=1), default=None, help="use only the first N images"),
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
        ]
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="log at INFO level")
def main(verbose: bool) -> None:
    """Image and tokenizer metrics: FID, IS, PSNR, SSIM, LPIPS, rFID, codebook usage."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")


@main.command("fid-cache")
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="reference .npz to write")
@_source_options(batch_size=50)
def fid_cache_command(
    source: str,
    out_path: str,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
) -> None:
    """Inception statistics of SOURCE (image shard set or image folder) -> reference .npz for FID."""
    with _user_errors():
        batches = open_images(source, batch_size=batch_size, image_size=image_size, limit=limit)
        inception = load_fid_inception(inception_weights, device=device, channels_last=channels_last)
        reference = compute_reference(inception, batches, source_meta=batches.meta)
        reference.save(out_path)
    click.echo(f"wrote {out_path}: {reference.n} images, {reference.mu.shape[0]}-d features")


@main.command("fid")
@click.argument("generated", type=click.Path(exists=True, file_okay=False))
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
    inception_weights: str | None,
    device: str,
    channels_last: bool,
) -> None:
    """FID of the images in GENERATED (folder or shard set) against --ref."""
    _score_generated(generated, ref_path, splits=0, method=method, out_path=out_path, image_size=image_size,
                     batch_size=batch_size, limit=limit, inception_weights=inception_weights, device=device,
                     channels_last=channels_last)


@main.command("generation")
@click.argument("samples", type=click.Path(exists=True, file_okay=False))
@click.option("--ref", "ref_path", type=click.Path(dir_okay=False), default=None, help="reference .npz (FID is skipped without it)")
@click.option("--splits", default=10, show_default=True, type=click.IntRange(min=1), help="Inception Score splits")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="also write the result as JSON")
@_source_options(batch_size=50)
def generation_command(
    samples: str,
    ref_path: str | None,
    splits: int,
    out_path: str | None,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
) -> None:
    """FID (with --ref) and Inception Score of generated SAMPLES (folder or shard set)."""
    _score_generated(samples, ref_path, splits=splits, method="eigh", out_path=out_path, image_size=image_size,
                     batch_size=batch_size, limit=limit, inception_weights=inception_weights, device=device,
                     channels_last=channels_last)


def _score_generated(
    images: str,
    ref_path: str | None,
    *,
    splits: int,
    method: str,
    out_path: str | None,
    image_size: int | None,
    batch_size: int,
    limit: int | None,
    inception_weights: str | None,
    device: str,
    channels_last: bool,
) -> None:
    """FID against ``ref_path`` (when given) and Inception Score over ``splits`` (0: none) of IMAGES."""
    with _user_errors():
        reference = ReferenceStats.load(ref_path) if ref_path else None
        batches = open_images(images, batch_size=batch_size, image_size=image_size, limit=limit)
        inception = load_fid_inception(inception_weights, device=device, channels_last=channels_last)
        result = evaluate_generation(inception, batches, reference=reference, splits=splits, fid_method=method)  # type: ignore[arg-type]
    _emit(result, out_path)


@main.command("tokenizer")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.argument("source", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--out-dir", type=click.Path(file_okay=False), default=None, help="report directory (default: <checkpoint dir>/eval-<source name>)"
)
@click.option(
    "--ref",
    "ref_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="reference .npz: rFID against it instead of against the originals",
)
@click.option("--metrics", default=",".join(RECONSTRUCTION_METRICS), show_default=True, help="comma-separated subset")
@click.option("--lpips-net", type=click.Choice(["alex", "vgg", "squeeze"]), default="alex", show_default=True)
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
@click.option("--seed", default=0, show_default=True)
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
    inception_weights: str | None,
    device: str,
    channels_last: bool,
) -> None:
    """Every reconstruction metric of the tokenizer CHECKPOINT on SOURCE, with a JSON and HTML report."""
    from vq_eval.perceptual import load_lpips
    from vq_eval.tokenizer_report import tokenizer_report

    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    with _user_errors():
        from vq_tokenizers import load_tokenizer

        model = load_tokenizer(checkpoint, map_location=device)
        if not model.can_decode and set(chosen) - {"usage"}:
            click.echo(f"{checkpoint}: {model.family} has no pixel decoder; reporting codebook usage only", err=True)
            chosen = ["usage"]
        batches = open_images(source, batch_size=batch_size, image_size=image_size or model.image_size, limit=limit)
        reference = ReferenceStats.load(ref_path) if ref_path else None
        inception = load_fid_inception(inception_weights, device=device, channels_last=channels_last) if "rfid" in chosen else None
        lpips_model = (
            load_lpips(lpips_net, backbone_weights=lpips_backbone, linear_weights=lpips_weights, device=device)  # type: ignore[arg-type]
            if "lpips" in chosen else None
        )  # fmt: skip
        directory = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent / f"eval-{Path(source).resolve().name}"
        details = {"checkpoint": str(checkpoint), "family": model.family, "codebook_size": model.codebook_size, **batches.meta}
        result, report = tokenizer_report(
            model, batches, directory, metrics=chosen, inception=inception, lpips_model=lpips_model, reference=reference,
            quantize=not no_quantize, examples=examples, token_images=patch_images, seed=seed,
            title=f"{model.family} tokenizer: {Path(checkpoint).name} on {Path(source).name}", details=details,
        )  # fmt: skip
    click.echo(format_table(result))
    click.echo(f"report: {report}")


def _emit(result: dict[str, Any], out_path: str | None) -> None:
    """Print the table, and write the JSON when asked."""
    click.echo(format_table(result))
    if out_path:
        write_metrics(out_path, result)
        click.echo(f"wrote {out_path}")
