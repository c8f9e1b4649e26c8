"""``vq-tok export-llamagen`` / ``import-llamagen``: token shards <-> LlamaGen's ``extract_codes_c2i`` layout.

Registered into the ``vq-tok`` group by ``cli.COMMAND_MODULES``; the work is in :mod:`vq_tokenizers.llamagen_codes`.
"""

from __future__ import annotations

import click

DATASET_HELP = "LlamaGen's --dataset name: folders <dataset><size>_codes / _labels"


@click.command("export-llamagen")
@click.argument("shards", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="LlamaGen --code-path folder to create")
@click.option("--dataset", default="imagenet", show_default=True, help=DATASET_HELP)
@click.option("--no-verify", is_flag=True, help="read token shards without checking their sha256 against the manifest")
def export_llamagen_cmd(shards: str, out: str, dataset: str, no_verify: bool) -> None:
    """Write the token shards SHARDS as LlamaGen codes: OUT/<dataset><size>_codes/<i>.npy (1, views, h*w) + labels."""
    from vq_tokenizers.llamagen_codes import export_llamagen_codes

    codes_dir, count = export_llamagen_codes(shards, out, dataset=dataset, verify=not no_verify)
    click.echo(f"wrote {count} code/label pairs to {codes_dir} (LlamaGen train_c2i: --code-path {out})")


@click.command("import-llamagen")
@click.argument("code_path", type=click.Path(exists=True, file_okay=False))
@click.option("--out", required=True, type=click.Path(), help="token shard directory")
@click.option("--tokenizer", required=True, type=click.Path(exists=True), help="checkpoint of the tokenizer the codes came from")
@click.option("--dataset", default="imagenet", show_default=True, help=DATASET_HELP)
@click.option("--image-size", type=int, default=None, help="pick <dataset><size>_codes when CODE_PATH holds several sizes")
@click.option("--samples-per-shard", type=int, default=256, show_default=True, help="token samples per shard tar")
@click.option("--overwrite", is_flag=True, help="replace an existing shard set in --out")
def import_llamagen_cmd(
    code_path: str, out: str, tokenizer: str, dataset: str, image_size: int | None, samples_per_shard: int, overwrite: bool
) -> None:
    """Pack LlamaGen codes (its --code-path folder CODE_PATH) into token shards whose manifest names TOKENIZER."""
    from vq_tokenizers.llamagen_codes import import_llamagen_codes

    manifest = import_llamagen_codes(
        code_path, out, tokenizer, dataset=dataset, image_size=image_size, samples_per_shard=samples_per_shard, overwrite=overwrite
    )
    click.echo(f"wrote {manifest.num_samples} samples in {len(manifest.shards)} shards to {out}")


def register(main: click.Group) -> None:
    """Add both commands to ``vq-tok``."""
    main.add_command(export_llamagen_cmd)
    main.add_command(import_llamagen_cmd)
