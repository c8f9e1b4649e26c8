"""``vq-data``: pack image sources into shard sets, verify them, inspect manifests, print the schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vq_core.cli_common import RenamedOption, vq_cli
from vq_data.names import DEFAULT_MAX_PIXELS, SKIPPED_NAME, SOURCE_KINDS

if TYPE_CHECKING:
    from vq_core import Manifest


@vq_cli(
    "vq-data", "vq_data.sources:SourceError", "vq_data.shards:ShardError", "vq_data.shards:SampleError",
    "vq_data.imageio:ImageDecodeError",
)
def main() -> None:
    """Image sources -> webdataset shard sets with manifests."""


@main.command("pack")
@click.argument("source")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="output shard set directory")
@click.option("--samples-per-shard", default=256, show_default=True, type=click.IntRange(min=1), help="images per shard tar (the last shard may hold fewer)")
@click.option("--image-size", default=256, show_default=True, type=click.IntRange(min=1), help="stored side length")
@click.option("--format", "image_format", type=click.Choice(["png", "jpg"]), default="png", show_default=True, help="image encoding inside the shards: png (lossless) or jpg (quality 95)")
@click.option("--kind", type=click.Choice(SOURCE_KINDS), default=None, help="source kind (default: inferred)")
@click.option("--split", default=None, help="ImageNet split folder (default train); recorded in the manifest")
@click.option(
    "--crops-per-image", default=0, show_default=True, type=click.IntRange(min=0),
    help="bundled: random crops per photo (0 = whole photos)",
)
@click.option("--seed", default=0, show_default=True, help="bundled: seed of the random crops")
@click.option("--synset-map", type=click.Path(dir_okay=False), default=None, help="imagenet: LOC_synset_mapping.txt")
@click.option(
    "--val-labels", type=click.Path(dir_okay=False), default=None,
    help="imagenet: LOC_val_solution.csv or a '<file> <wnid or index>' list",
)
@click.option(
    "--loader-workers", "--workers", "workers", cls=RenamedOption, old_names=("--workers",), default=1, show_default=True,
    type=click.IntRange(min=1), help="threads reading, decoding and re-encoding images (shards are written in record order)",
)
@click.option(
    "--max-pixels", default=DEFAULT_MAX_PIXELS, show_default=True, type=click.IntRange(min=0),
    help="refuse (or with --skip-bad, skip) images larger than this, checked before decoding; 0 = no cap",
)
@click.option("--skip-bad", is_flag=True, help=f"log and skip unreadable images (listed in {SKIPPED_NAME})")
@click.option(
    "--overwrite", is_flag=True,
    help="start over: delete the shard set in --out (and any other shard-*.tar there) instead of resuming it",
)
def pack_command(
    source: str,
    out_dir: str,
    samples_per_shard: int,
    image_size: int,
    image_format: str,
    kind: str | None,
    split: str | None,
    crops_per_image: int,
    seed: int,
    synset_map: str | None,
    val_labels: str | None,
    workers: int,
    max_pixels: int,
    skip_bad: bool,
    overwrite: bool,
) -> None:
    """Pack SOURCE (a folder, ImageNet root, list file, 'bundled' or 'digits') into shards in --out.

    A re-run of an interrupted job resumes after the last whole shard.
    """
    from vq_data.pack import pack, read_skipped
    from vq_data.sources import make_source

    image_source = make_source(
        source, kind=kind, split=split, crops_per_image=crops_per_image, seed=seed,  # type: ignore[arg-type]
        synset_map=synset_map, val_labels=val_labels, max_pixels=max_pixels or None,
    )
    manifest = pack(
        image_source, out_dir, samples_per_shard=samples_per_shard, image_size=image_size,
        image_format=image_format, skip_bad=skip_bad, overwrite=overwrite, workers=workers,  # type: ignore[arg-type]
    )
    skipped = read_skipped(out_dir)
    click.echo(
        f"{out_dir}: {manifest.num_samples} images in {len(manifest.shards)} shards, "
        f"{manifest.dataset.num_classes} classes" + (f", {len(skipped)} skipped (see {SKIPPED_NAME})" if skipped else "")
    )


@main.command("verify")
@click.argument("directory", type=click.Path(file_okay=False))
def verify_command(directory: str) -> None:
    """Re-hash and re-count every shard of DIRECTORY; exit 1 and list the problems if any."""
    from vq_data.shards import open_manifest, verify_shards

    problems = verify_shards(directory)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise click.ClickException(f"{directory}: {len(problems)} problem(s)")
    manifest = open_manifest(directory)
    click.echo(f"{directory}: OK ({len(manifest.shards)} shards, {manifest.num_samples} samples)")


@main.command("inspect")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="print the manifest as JSON")
def inspect_command(directory: str, as_json: bool) -> None:
    """Summarise the manifest of DIRECTORY (complete or still being written)."""
    from vq_data.pack import read_skipped
    from vq_data.shards import open_manifest

    manifest = open_manifest(directory, require_complete=False)
    skipped = read_skipped(directory)
    if as_json:
        click.echo(manifest.model_dump_json(indent=2))
        return
    for line in summary_lines(manifest, Path(directory), len(skipped)):
        click.echo(line)


def summary_lines(manifest: Manifest, directory: Path, num_skipped: int) -> list[str]:
    """Human-readable lines describing a shard set."""
    data = manifest.dataset
    counts = sorted({s.num_samples for s in manifest.shards})
    names = ", ".join(data.class_names[:10]) + (" ..." if len(data.class_names) > 10 else "")
    lines = [
        f"shard set   {directory} ({'complete' if manifest.complete else 'INCOMPLETE: a job is writing it or was killed'})",
        f"kind        {manifest.kind}, schema v{manifest.schema_version}, {manifest.tool} {manifest.tool_version}",
        f"created     {manifest.created}",
        f"dataset     {data.name} (split {data.split or '-'}) from {data.source}",
        f"            {data.description}" if data.description else "",
        f"images      size {data.image_size or 'original'}, transform: {data.transform or '-'}",
        f"classes     {data.num_classes}" + (f": {names}" if names else ""),
        f"samples     {manifest.num_samples} in {len(manifest.shards)} shards of {manifest.samples_per_shard} "
        f"(counts {counts}), {sum(s.size_bytes for s in manifest.shards) / 2**20:.1f} MiB",
    ]
    if manifest.tokenizer is not None:
        tok = manifest.tokenizer
        lines.append(
            f"tokenizer   {tok.name} codebook {tok.codebook_size}, grid {tuple(tok.grid)} {tok.dtype}, image {tok.image_size}"
            + (", ten-crop" if tok.ten_crop else "")
            + f"; config {tok.config_hash}, checkpoint sha256 {tok.checkpoint_sha256[:12]}..."
        )
    if num_skipped:
        lines.append(f"skipped     {num_skipped} unreadable images (listed in {SKIPPED_NAME})")
    return [line for line in lines if line]


@main.command("schema")
def schema_command() -> None:
    """Print the JSON schema of manifest.json."""
    from vq_core.manifest import Manifest

    click.echo(json.dumps(Manifest.model_json_schema(), indent=2, sort_keys=True))
