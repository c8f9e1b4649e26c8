"""``vq-tok`` commands of the teacher-based tokenizers: train-vqkd, fit-cluster, train-pixel-decoder,
convert beit.  Each builds a job config and calls the ``fn(config, session)`` loop that
``vq_core.launch`` (and Ray Train) can run as well: ``train_vqkd``, ``fit_cluster``,
``train_pixel_decoder``.  Registered into the ``vq-tok`` group by ``cli.COMMAND_MODULES``.

Teachers are given as specs (``clip:DIR``, ``clip-proj:DIR``, ``dino:DIR``, ``dinov2:DIR``,
``tv-vit_b_16:FILE``, ``tv-convnext_tiny:FILE``; ``random-clip:tiny`` is a seeded random CLIP for demos
only), see ``vq_tokenizers.teachers.loading``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from vq_core import launch_options
from vq_core.acceleration import speed_options
from vq_core.cli_common import config_option
from vq_core.tracking import tracking_options
from vq_core.overrides import parse_overrides
from vq_tokenizers.cli.options import run_job, train_overrides, trust_pickle_option

DATA_HELP = "image shard set, image folder, list file, ImageNet root or 'bundled'"
TEACHER_HELP = "teacher spec kind:path (clip:DIR, clip-proj:DIR, dino:DIR, dinov2:DIR, mae:DIR, openclip:DIR|NAME@FILE|NAME:TAG, evaclip:..., tv-vit_b_16:FILE, random-clip:tiny)"


def _run(fn: Callable[..., dict[str, float]], job: Any, name: str, launch_flags: dict[str, Any]) -> dict[str, Any]:
    """Run a job (here or on Ray), turning a missing or unusable teacher into a usage error naming the file."""
    from vq_tokenizers.teachers import TeacherError

    try:
        return run_job(fn, job, name=name, launch_flags=launch_flags)
    except TeacherError as err:
        raise click.BadParameter(str(err), param_hint="--teacher") from err


@click.command("train-vqkd")
@config_option(model="model_set", train="train_set")
@click.option("--teacher", required=True, help=TEACHER_HELP)
@click.option("--teacher-layer", type=int, default=None, help="hidden state to distil (default: final output)")
@click.option("--teacher-size", type=int, default=None, help="teacher input size (default: its own)")
@click.option("--preset", default="tiny", show_default=True, help="tiny | vqkd_clip_8192")
@click.option("--data", required=True, help=DATA_HELP)
@click.option("--out", required=True, type=click.Path(), help="run directory")
@click.option("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
@click.option("--batch-size", type=int, default=None, help="global images per optimizer step (default: the preset's)")
@click.option("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
@click.option("--device", default=None, help="torch device (default: cuda when available)")
@click.option("--resume", is_flag=True, help="continue from the latest checkpoint in --out")
@click.option("--set", "model_set", multiple=True, help="model override key=value (e.g. quantizer.codebook_size=512)")
@click.option("--train-set", multiple=True, help="train override key=value (e.g. warmup_steps=100)")
@speed_options
@tracking_options
@launch_options
def train_vqkd_cmd(
    teacher: str,
    teacher_layer: int | None,
    teacher_size: int | None,
    preset: str,
    data: str,
    out: str,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    device: str | None,
    resume: bool,
    model_set: tuple[str, ...],
    train_set: tuple[str, ...],
    precision: str | None,
    compile_model: bool | None,
    tensorboard: bool | None,
    wandb: bool | None,
    **launch_flags: Any,
) -> None:
    """Distil a teacher's patch features into VQ-KD tokens (BEiT v2)."""
    from vq_tokenizers.training.vqkd import VQKDJob, train_vqkd

    train = train_overrides(
        train_set, steps=steps, batch_size=batch_size, lr=lr, device=device, precision=precision,
        compile_model=compile_model, tensorboard=tensorboard, wandb=wandb,
    )
    job = VQKDJob(
        teacher=teacher, teacher_layer=teacher_layer, teacher_size=teacher_size, preset=preset,
        model=parse_overrides(model_set, "--set"), train=train, data=data, out=out, resume=resume,
    )
    click.echo(json.dumps(_run(train_vqkd, job, "vq-tok-train-vqkd", launch_flags), indent=2))


@click.command("fit-cluster")
@config_option()
@click.option("--teacher", required=True, help=TEACHER_HELP)
@click.option("--teacher-layer", type=int, default=None, help="hidden state to cluster (default: final output)")
@click.option("--teacher-size", type=int, default=None, help="teacher input size (default: its own)")
@click.option("--k", "k", type=int, default=8192, show_default=True, help="codebook size")
@click.option("--data", required=True, help=DATA_HELP)
@click.option("--out", required=True, type=click.Path(), help="run directory (tokenizer.safetensors, fit.json)")
@click.option("--image-size", type=int, default=None, help="tokenizer input size (default: the teacher's)")
@click.option("--batch-size", type=int, default=64, show_default=True, help="images per feature batch")
@click.option("--epochs", type=int, default=1, show_default=True, help="mini-batch k-means passes over the data")
@click.option("--refine-passes", type=int, default=2, show_default=True, help="exact (streamed) Lloyd passes afterwards")
@click.option("--anchor-passes", type=int, default=0, show_default=True, help="passes re-seeding rarely used codes from anchors")
@click.option("--init-samples", type=int, default=None, help="features sampled for k-means++ seeding (default 3 k)")
@click.option("--max-images", type=int, default=None, help="use at most this many images")
@click.option("--method", type=click.Choice(["kmeans", "sgd"]), default="kmeans", show_default=True,
              help="kmeans: streamed k-means; sgd: the seed's Adam + CVQ nearest-anchor fit (--batch-size is global)")
@click.option("--steps", type=int, default=100_000, show_default=True, help="with --method sgd: iterations")
@click.option("--lr", type=float, default=5.4e-5, show_default=True, help="with --method sgd: Adam learning rate")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the feature sampling and the k-means++ seeding")
@click.option("--device", default=None, help="torch device (default: cuda when available)")
@launch_options
def fit_cluster_cmd(ray_address: str | None, num_workers: int, gpus: bool, max_failures: int, storage_path: str | None, **options: Any) -> None:
    """Cluster a teacher's patch features into a k-code tokenizer (streamed k-means, or the seed's SGD: --method sgd)."""
    from vq_tokenizers.cluster import ClusterJob, fit_cluster

    job = ClusterJob(**options)
    launch_flags = {"ray_address": ray_address, "num_workers": num_workers, "gpus": gpus, "max_failures": max_failures, "storage_path": storage_path}
    report = _run(fit_cluster, job, "vq-tok-fit-cluster", launch_flags)
    click.echo(json.dumps({"checkpoint": str(Path(job.out) / "tokenizer.safetensors"), **report}, indent=2))


@click.command("train-pixel-decoder")
@config_option(model="model_set", loss="loss_set", train="train_set")
@click.option("--tokenizer", required=True, type=click.Path(exists=True), help="frozen VQ-KD / Cluster checkpoint")
@click.option("--preset", default="tiny", show_default=True, help="tiny | vqgan | llamagen")
@click.option("--data", required=True, help=DATA_HELP)
@click.option("--out", required=True, type=click.Path(), help="run directory (tokenizer.safetensors is the pixel tokenizer)")
@click.option("--embedding", type=click.Choice(["codebook", "learned"]), default=None, help="token embedding (default codebook)")
@click.option("--steps", type=int, default=None, help="optimizer steps (default: the preset's)")
@click.option("--batch-size", type=int, default=None, help="global images per optimizer step (default: the preset's)")
@click.option("--lr", type=float, default=None, help="peak learning rate (default: the preset's)")
@click.option("--device", default=None, help="torch device (default: cuda when available)")
@click.option("--loader-workers", type=int, default=0, show_default=True, help="decoding worker processes (image shard sets)")
@click.option("--resume", is_flag=True, help="continue from the latest checkpoint in --out")
@click.option("--lpips-vgg", type=click.Path(), default=None, help="torchvision vgg16 weights for LPIPS")
@click.option("--set", "model_set", multiple=True, help="decoder override key=value (e.g. ch=64)")
@click.option("--loss-set", multiple=True, help="loss override key=value (e.g. perceptual_weight=0)")
@click.option("--train-set", multiple=True, help="train override key=value")
@speed_options
@tracking_options
@launch_options
def train_pixel_decoder_cmd(
    tokenizer: str,
    preset: str,
    data: str,
    out: str,
    embedding: str | None,
    steps: int | None,
    batch_size: int | None,
    lr: float | None,
    device: str | None,
    loader_workers: int,
    resume: bool,
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
    """Train a conv pixel decoder on the frozen tokens of TOKENIZER (same token space, now decodable)."""
    from vq_tokenizers.training.pixel_decoder import PixelDecoderJob, train_pixel_decoder

    decoder = parse_overrides(model_set, "--set")
    if embedding:
        decoder["embedding"] = embedding
    loss = parse_overrides(loss_set, "--loss-set")
    if lpips_vgg:
        loss["lpips_vgg_weights"] = lpips_vgg
    train = train_overrides(
        train_set, steps=steps, batch_size=batch_size, lr=lr, device=device, precision=precision,
        compile_model=compile_model, tensorboard=tensorboard, wandb=wandb,
    )
    job = PixelDecoderJob(
        tokenizer=tokenizer, preset=preset, decoder=decoder, loss=loss, train=train, data=data, num_workers=loader_workers,
        out=out, resume=resume,
    )
    click.echo(json.dumps(_run(train_pixel_decoder, job, "vq-tok-train-pixel-decoder", launch_flags), indent=2))


@click.command("beit")
@click.argument("checkpoint", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(), help="vq checkpoint to write")
@click.option("--heads", type=int, default=None, help="attention heads (default: width / 64, as BEiT)")
@trust_pickle_option
def convert_beit_cmd(checkpoint: str, out: str, heads: int | None, trust_pickle: bool) -> None:
    """A BEiT v2 VQ-KD .pth (microsoft/unilm beit2) -> vq checkpoint (family vqkd)."""
    from vq_tokenizers.converters import convert_beit

    click.echo(convert_beit(checkpoint, out, heads=heads, trust_pickle=trust_pickle))


def register(main: click.Group) -> None:
    """Add these commands to ``vq-tok`` (and ``beit`` under ``vq-tok convert``)."""
    for command in (train_vqkd_cmd, fit_cluster_cmd, train_pixel_decoder_cmd):
        main.add_command(command)
    main.commands["convert"].add_command(convert_beit_cmd)
