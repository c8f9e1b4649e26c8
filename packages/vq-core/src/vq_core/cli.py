"""``vq-core``: look inside the shared artefacts (checkpoints, manifests) and their schema."""

from __future__ import annotations

import json

import click

from vq_core.cli_common import vq_cli


@vq_cli("vq-core")
def main() -> None:
    """Shared types of the vq packages: checkpoints, token-shard manifests, their JSON schema."""


@main.command()
def schema() -> None:
    """Print the JSON schema of ``manifest.json`` (the contract between packages)."""
    from vq_core.manifest import manifest_json_schema

    click.echo(manifest_json_schema())


class _CheckpointGroup(click.Group):
    """``vq-core checkpoint PATH`` shows a checkpoint; ``vq-core checkpoint upgrade OLD NEW`` converts one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@main.group(cls=_CheckpointGroup)
def checkpoint() -> None:
    """Show a checkpoint (vq-core checkpoint PATH) or upgrade an old pickle-format one (never unpickled unasked)."""


@checkpoint.command("show")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def checkpoint_show(path: str) -> None:
    """Print a checkpoint's family, step, config hash and config, and its tensor count (never unpickles)."""
    from vq_core.checkpoint import CheckpointError, load_checkpoint

    try:
        ckpt = load_checkpoint(path)
    except CheckpointError as err:
        raise click.ClickException(str(err)) from err
    params = sum(t.numel() for t in ckpt.model.values())
    click.echo(f"family {ckpt.family}  step {ckpt.step}  config {ckpt.config_hash}  tensors {len(ckpt.model)}  parameters {params:,}")
    click.echo(json.dumps(ckpt.config, indent=2, default=str))


@checkpoint.command("upgrade")
@click.argument("old", type=click.Path(exists=True, dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option(
    "--trust-pickle",
    is_flag=True,
    help="unpickle OLD in full if the weights-only loader refuses it (can run code: only for files you trust)",
)
def checkpoint_upgrade(old: str, new: str, trust_pickle: bool) -> None:
    """Rewrite an old torch.save vq checkpoint OLD as a safetensors checkpoint NEW."""
    from vq_core.checkpoint import CheckpointError
    from vq_core.checkpoint_upgrade import upgrade_checkpoint

    try:
        path = upgrade_checkpoint(old, new, trust_pickle=trust_pickle)
    except CheckpointError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"wrote {path}")


@main.command()
@click.argument("path", type=click.Path(exists=True))
def manifest(path: str) -> None:
    """Validate a ``manifest.json`` (or the directory holding it) and print a summary."""
    from vq_core.manifest import Manifest, ManifestError

    try:
        m = Manifest.load(path)
    except ManifestError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{m.kind} shard set: {m.num_samples} samples in {len(m.shards)} shards, schema {m.schema_version}")
    if m.tokenizer is not None:
        click.echo(f"tokenizer {m.tokenizer.name} codebook {m.tokenizer.codebook_size} grid {m.tokenizer.grid}")
