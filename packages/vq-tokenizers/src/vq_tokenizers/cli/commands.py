"""``vq-tok``: train, tokenize, decode, reconstruct, convert, presets.

Other modules contribute commands without editing the ones here: each module named in
``COMMAND_MODULES`` defines ``register(main: click.Group) -> None`` and adds its commands (or
subcommands of ``convert``, reachable as ``main.commands["convert"]``).
"""

from __future__ import annotations

import importlib
import json
from typing import Any

import click

from vq_core import asks_for_ray, launch_options
from vq_core.acceleration import speed_options
from vq_core.tracking import tracking_options
from vq_core.cli_common import config_option, vq_cli
from vq_core.overrides import parse_overrides as _parse_overrides
from vq_tokenizers.cli.options import run_job, train_overrides as _train_overrides, trust_pickle_option

COMMAND_MODULES: tuple[str, ...] = ("vq_tokenizers.cli.vqkd", "vq_tokenizers.cli.llamagen")


@vq_cli("vq-tokenizers")
def main() -> None:
    """Discrete image tokenizers: train, tokenize to shards, decode, convert published checkpoints."""


@main.command()
@config_option(model="model_set", loss="loss_set", train="train_set")
@click.option("--family", default=None, help="vqgan | cvq | fsq (needed for per-family presets such as tiny)")
@click.option("--preset", default="tiny", show_default=True, help="named preset (vq-tok presets; --show NAME prints its fields)")
@click.option("--data", required=True, help="image shard set, image folder, list file, ImageNet root or 'bundled'")
@click.option("--out", required=True, type=click.Path(), help="checkpoint directory")
@click.option("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
@click.option("--batch-size", type=int, default=None, help="global images per optimizer step")
@click.option("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
@click.option("--device", default=None, help="torch device (default: cuda when available)")
@click.option("--loader-workers", type=int, default=0, show_default=True, help="decoding worker processes (image shard sets)")
@click.option("--resume", is_flag=True, help="continue from the latest checkpoint in --out")
@click.option("--init-from", type=click.Path(exists=True), default=None, help="start from these weights")
@click.option("--lpips-vgg", type=click.Path(), default=None, help="torchvision vgg16 weights for LPIPS")
@click.option("--set", "model_set", multiple=True, help="model override key=value (e.g. quantizer.codebook_size=512)")
@click.option("--loss-set", multiple=True, help="loss override key=value (e.g. perceptual_weight=0)")
@click.option("--train-set", multiple=True, help="train override key=value (e.g. ema_decay=0.999)")
@speed_options
@tracking_options
@launch_options
def train(
    family: str | None,
    preset: str,
    data: str,
    out: str,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    device: str | None,
    loader_workers: int,
    resume: bool,
    init_from: str | None,
    lpips_vgg: str | None,
    model_set: tuple[str, ...],
    loss_set: tuple[str, ...],
    train_set: tuple[str, ...],
    precision: str | None,
    compile_model: bool | None,
    tensorboard: bool | None,
    wandb: bool | None,
    **launch_flags: Any,
) -> None:
    """Train a VQGAN / CVQ-VAE / FSQ tokenizer from a preset (one process, under torchrun, or on Ray)."""
    from vq_tokenizers.training.job import TrainJob, train_tokenizer

    train_overrides = _train_overrides(
        train_set, steps=steps, batch_size=batch_size, lr=lr, device=device, precision=precision,
        compile_model=compile_model, tensorboard=tensorboard, wandb=wandb,
    )
    loss_overrides = _parse_overrides(loss_set, "--loss-set")
    if lpips_vgg:
        loss_overrides["lpips_vgg_weights"] = lpips_vgg
    job = TrainJob(
        family=family,
        preset=preset,
        model=_parse_overrides(model_set, "--set"),
        loss=loss_overrides,
        train=train_overrides,
        data=data,
        out=out,
        num_workers=loader_workers,
        resume=resume,
        init_from=init_from,
    )
    metrics = run_job(train_tokenizer, job, name="vq-tok-train", launch_flags=launch_flags)
    click.echo(json.dumps(metrics, indent=2))


@main.command()
@click.argument("source")
@click.option("--ckpt", required=True, type=click.Path(exists=True), help="tokenizer checkpoint")
@click.option("--out", required=True, type=click.Path(), help="token shard directory")
@click.option("--samples-per-shard", type=int, default=256, show_default=True, help="token samples per shard tar")
@click.option("--batch-size", type=int, default=32, show_default=True, help="images per forward batch")
@click.option("--ten-crop", is_flag=True, help="store 10 crops per image (tokens (10, h, w))")
@click.option(
    "--image-size", type=int, default=None,
    help="crop side to tokenize at (default: the model's); e.g. 256 with a 224-px VQ-KD/Cluster gives 16x16 tokens",
)
@click.option("--device", default=None, help="torch device (default: cuda when available)")
@click.option(
    "--overwrite", is_flag=True, help="start over: delete the token shards in --out (and any other shard-*.tar there)"
)
@click.option("--no-verify", is_flag=True, help="read image shards without checking their sha256 against the manifest")
@click.option("--ray", "use_ray", is_flag=True, hidden=True, help="old spelling of --ray-address local")
@click.option(
    "--ray-address", default=None,
    help="tokenize on a Ray Data actor pool (same shard files): 'local' (Ray started here) or 'auto' / an address (cluster)",
)
@click.option(
    "--num-workers", type=click.IntRange(min=1), default=1, show_default=True, help="Ray tokenizer actors (more than 1 runs on Ray)"
)
@click.option("--gpus", is_flag=True, help="one GPU per Ray actor (runs on Ray)")
def tokenize(
    source: str, ckpt: str, out: str, samples_per_shard: int, batch_size: int, ten_crop: bool, image_size: int | None,
    device: str | None, overwrite: bool, no_verify: bool, use_ray: bool, ray_address: str | None, num_workers: int, gpus: bool,
) -> None:
    """Tokenize SOURCE (image shard set, folder, list file, ImageNet root, 'bundled') into token shards."""
    from vq_tokenizers.tokenize import tokenize_shards
    from vq_tokenizers.tokenize_ray import tokenize_shards_ray

    common = {
        "samples_per_shard": samples_per_shard, "ten_crop": ten_crop, "batch_size": batch_size, "overwrite": overwrite,
        "verify": not no_verify, "image_size": image_size,
    }
    if use_ray or asks_for_ray(ray_address, num_workers, gpus):
        manifest = tokenize_shards_ray(
            ckpt, source, out, ray_address=ray_address or "local", num_workers=num_workers, use_gpu=gpus, **common
        )
    else:
        manifest = tokenize_shards(ckpt, source, out, device=device, **common)
    click.echo(f"{manifest.num_samples} images -> {len(manifest.shards)} token shards in {out}")


@main.command()
@click.argument("tokens", type=click.Path(exists=True))
@click.option("--ckpt", required=True, type=click.Path(exists=True), help="tokenizer checkpoint (one with a decoder)")
@click.option("--out", required=True, type=click.Path(), help="directory of the decoded PNGs")
@click.option("--limit", type=int, default=None, help="decode at most this many samples")
@click.option("--device", default=None, help="torch device (default: cuda when available)")
@click.option("--no-verify", is_flag=True, help="read token shards without checking their sha256 against the manifest")
def decode(tokens: str, ckpt: str, out: str, limit: int | None, device: str | None, no_verify: bool) -> None:
    """Decode the token shards TOKENS back to PNG images (OUT/<key>.png; keys never lead outside OUT)."""
    from vq_tokenizers.tokenize import decode_shards

    paths = decode_shards(tokens, ckpt, out, limit=limit, device=device, verify=not no_verify)
    click.echo(f"wrote {len(paths)} images to {out}")


@main.command()
@click.argument("image", type=click.Path(exists=True))
@click.option("--ckpt", required=True, type=click.Path(exists=True), help="tokenizer checkpoint (one with a decoder)")
@click.option("--out", required=True, type=click.Path(), help="PNG: input | reconstruction")
@click.option("--device", default=None, help="torch device (default: cuda when available)")
def reconstruct(image: str, ckpt: str, out: str, device: str | None) -> None:
    """IMAGE -> tokens -> image, written side by side."""
    from vq_tokenizers.tokenize import reconstruct_image

    stats = reconstruct_image(image, ckpt, out, device=device)
    click.echo(json.dumps(stats))


@main.group()
def convert() -> None:
    """Convert published tokenizer checkpoints into vq checkpoints.

    Releases are pickles: they are read with torch's weights-only unpickler plus an allowlist of the
    harmless types they carry; a file needing more is refused unless --trust-pickle is given.
    """


@convert.command("taming")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(), help="vq checkpoint to write")
@click.option("--image-size", type=int, default=256, show_default=True, help="image side the release was trained at (recorded in the checkpoint)")
@trust_pickle_option
def convert_taming_cmd(checkpoint: str, out: str, image_size: int, trust_pickle: bool) -> None:
    """A taming-transformers VQGAN .ckpt -> vq checkpoint (family vqgan)."""
    from vq_tokenizers.converters import convert_taming

    click.echo(convert_taming(checkpoint, out, image_size=image_size, trust_pickle=trust_pickle))


@convert.command("llamagen")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(), help="vq checkpoint to write")
@click.option("--image-size", type=int, default=256, show_default=True, help="image side the release was trained at (recorded in the checkpoint)")
@click.option("--weights", type=click.Choice(["ema", "model"]), default="ema", show_default=True, help="the release's EMA weights or its raw model weights")
@trust_pickle_option
def convert_llamagen_cmd(checkpoint: str, out: str, image_size: int, weights: str, trust_pickle: bool) -> None:
    """A LlamaGen VQ-16/VQ-8 .pt -> vq checkpoint (family vqgan, cosine codebook)."""
    from vq_tokenizers.converters import convert_llamagen

    click.echo(convert_llamagen(checkpoint, out, image_size=image_size, weights=weights, trust_pickle=trust_pickle))


def _preset_rows() -> dict[tuple[str, str], tuple[str, dict[str, Any], dict[str, str]]]:
    """(family, name) -> (description, the resolved fields, their documentation by dotted path) of every preset."""
    from vq_core.config import field_docs
    from vq_tokenizers.autoencoder import AutoencoderConfig  # noqa: F401  (registers the conv families)
    from vq_tokenizers.base import tokenizer_class
    from vq_tokenizers.cluster_presets import CLUSTER_PRESETS
    from vq_tokenizers.training.pixel_decoder import PIXEL_DECODER_PRESETS
    from vq_tokenizers.presets import PRESETS
    from vq_tokenizers.vqkd import VQKDConfig
    from vq_tokenizers.training.vqkd import VQKD_PRESETS

    def docs(**sections: type[Any]) -> dict[str, str]:
        return {f"{section}.{path}": text for section, cls in sections.items() for path, text in field_docs(cls).items()}

    rows: dict[tuple[str, str], tuple[str, dict[str, Any], dict[str, str]]] = {}
    for (family, name), p in PRESETS.items():
        config_class = tokenizer_class(family).config_class
        model = config_class.from_dict(p.model, source=f"preset {name}").model_dump(mode="json")
        rows[(family, name)] = (
            p.description, {"model": model, "loss": p.loss.model_dump(mode="json"), "train": p.train.model_dump(mode="json")},
            docs(model=config_class, loss=type(p.loss), train=type(p.train)),
        )
    for name, p in VQKD_PRESETS.items():
        model = VQKDConfig.from_dict(p.model, source=f"preset {name}").model_dump(mode="json")
        rows[("vqkd", name)] = (
            p.description, {"teacher": p.teacher, "model": model, "train": p.train.model_dump(mode="json")},
            docs(model=VQKDConfig, train=type(p.train)),
        )
    for name, p in PIXEL_DECODER_PRESETS.items():
        rows[("pixel", name)] = (
            p.description, {"decoder": dict(p.model), "loss": p.loss.model_dump(mode="json"), "train": p.train.model_dump(mode="json")},
            docs(loss=type(p.loss), train=type(p.train)),
        )
    for name, p in CLUSTER_PRESETS.items():
        fields = p.model_dump(mode="json", exclude={"name", "description"})
        rows[("cluster", name)] = (p.description, fields, {k: v for k, v in field_docs(type(p)).items() if k.split(".")[0] in fields})
    return rows


@main.command()
@click.option(
    "--show", "show", default=None, metavar="NAME",
    help="print one preset's resolved fields and, under docs, each documented field's description by dotted path (JSON)",
)
@click.option("--family", default=None, help="with --show: the family of a name several families use (tiny)")
def presets(show: str | None, family: str | None) -> None:
    """List the named presets (vq-tok train, train-vqkd, fit-cluster, train-pixel-decoder), or --show one."""
    rows = _preset_rows()
    if show is None:
        for (fam, name), (description, _, _) in sorted(rows.items()):
            click.echo(f"{fam:7s} {name:28s} {description}")
        return
    matches = [key for key in rows if key[1] == show and (family is None or key[0] == family)]
    if len(matches) != 1:
        what = "no preset" if not matches else "several presets"
        raise click.UsageError(
            f"{what} named {show!r}{f' in family {family!r}' if family else ''} (--show); "
            f"{'pass --family' if matches else 'see vq-tok presets'}"
        )
    (fam, name), (description, fields, field_help) = matches[0], rows[matches[0]]
    click.echo(json.dumps({"family": fam, "name": name, "description": description, **fields, "docs": field_help}, indent=2))


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(main)

