"""``vq-ar``: train the AR model on token shards, sample images with CFG, validate, list sizes."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from vq_ar.config import SIZES
from vq_core.cli_common import RenamedOption, config_option, vq_cli
from vq_core.launch_cli import launch_options
from vq_core.overrides import parse_overrides
from vq_core.tracking import tracking_options

if TYPE_CHECKING:  # the commands import torch and the model modules themselves: `vq-ar --help` stays fast
    import torch
    from vq_ar.checkpoint import LoadedAR
    from vq_ar.presets import ARPreset
    from vq_ar.sampling import SamplingConfig

log = logging.getLogger("vq_ar")


def _device(name: str | None) -> torch.device:
    import torch

    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def _load_for_inference(ckpt: str, device: torch.device, precision: str) -> LoadedAR:
    """Load a checkpoint onto ``device``; bf16 weights (and KV cache) on CUDA unless fp32 is asked for.

    A training checkpoint of a run with weight EMA samples with the averaged weights (the final
    model.safetensors of such a run already holds them).
    """
    import torch
    from vq_ar.checkpoint import load_ar
    from vq_ar.ema import ema_weights_into

    loaded = load_ar(ckpt, map_location=device)
    if ema_weights_into(loaded.model, loaded.state):
        log.info("sampling %s with its EMA weights", ckpt)
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        loaded.model.to(torch.bfloat16)
    return loaded


def _sampling_options(fn: Any) -> Any:
    options = [
        click.option("--cfg-scale", "--cfg", "cfg_scale", cls=RenamedOption, old_names=("--cfg",), type=float, default=1.0,
                     show_default=True, help="classifier-free guidance scale (1 = no guidance)"),
        click.option("--cfg-schedule", type=click.Choice(["constant", "linear"]), default="constant", show_default=True,
                     help="constant scale, or linear in the token index (LlamaGen's cfg_schedule)"),
        click.option("--cfg-interval", type=int, default=-1, show_default=True, help="LlamaGen's: guide tokens 0..N+1 only (-1: all)"),
        click.option("--temperature", type=float, default=1.0, show_default=True, help="softmax temperature of the next-token logits"),
        click.option("--top-k", type=int, default=0, show_default=True, help="sample among the k likeliest tokens (0 = off)"),
        click.option("--top-p", type=float, default=1.0, show_default=True, help="nucleus sampling mass (1 = off)"),
        click.option("--seed", type=int, default=0, show_default=True, help="seed of the sampling generator"),
        click.option("--batch-size", type=int, default=32, show_default=True, help="images generated per forward batch"),
        click.option("--tokenizer", "tokenizer_ckpt", type=click.Path(dir_okay=False), default=None,
                     help="decoder checkpoint; default: the one named by the training manifest"),
        click.option("--device", default=None, help="torch device (default: cuda when available)"),
        click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
                     help="bf16 weights and KV cache, or fp32; auto: bf16 on CUDA only"),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _sampling_config(kw: dict[str, Any]) -> SamplingConfig:
    from vq_ar.sampling import SamplingConfig

    return SamplingConfig(
        cfg_scale=kw["cfg_scale"],
        cfg_schedule=kw["cfg_schedule"],
        cfg_interval=kw["cfg_interval"],
        temperature=kw["temperature"],
        top_k=kw["top_k"],
        top_p=kw["top_p"],
    )


@vq_cli("vq-ar", "vq_ar.images:DecoderUnavailable")
def main() -> None:
    """LlamaGen-style class-conditional AR model over image tokens."""


@main.command()
@click.option("--vocab", type=int, default=None, help="codebook size [16384; with --show NAME: the preset's published one]")
@click.option("--classes", type=int, default=None, help="[1000]")
@click.option("--grid", type=int, default=None, help="token grid side [16]")
@click.option("--show", default=None, metavar="NAME", help="print a preset's (or size's) resolved model, train and sampling config")
def sizes(vocab: int | None, classes: int | None, grid: int | None, show: str | None) -> None:
    """List the model sizes and the presets with parameter counts (meta device: nothing is allocated)."""
    from vq_ar.config import LLAMAGEN_PARAMS, ar_config
    from vq_ar.model import count_parameters
    from vq_ar.presets import PRESETS

    if show is not None:
        click.echo(json.dumps(_resolved(show, vocab, classes, grid), indent=2))
        return
    vocab, classes, grid = vocab or 16384, classes or 1000, grid or 16
    click.echo(f"{'size':<6} {'layers':>6} {'dim':>5} {'heads':>5} {'ffn':>5} {'params':>10} {'LlamaGen':>9}")
    for name in SIZES:
        config = ar_config(name, vocab_size=vocab, num_classes=classes, grid=(grid, grid))
        published = f"{LLAMAGEN_PARAMS[name] / 1e6:.0f}M" if name in LLAMAGEN_PARAMS else "-"
        click.echo(
            f"{name:<6} {config.n_layer:>6} {config.dim:>5} {config.n_head:>5} {config.ffn_hidden:>5} "
            f"{count_parameters(config) / 1e6:>9.1f}M {published:>9}"
        )
    click.echo(f"\n{'preset':<22} {'size':<5} description  (vq-ar sizes --show NAME)")
    for name, preset in PRESETS.items():
        click.echo(f"{name:<22} {preset.size:<5} {preset.description}")


def _with_preset(
    preset: ARPreset, size: str, model_overrides: dict[str, Any], train_flags: dict[str, Any]
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A preset's size, model fields and training settings, under whatever the command line gave explicitly."""
    ctx = click.get_current_context()
    given = {name for name in (*train_flags, "size") if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT}
    train_fields = {**preset.train, **{k: v for k, v in train_flags.items() if k in given}}
    return (size if "size" in given else preset.size), {**preset.model, **model_overrides}, train_fields


def _resolved(name: str, vocab: int | None, classes: int | None, grid: int | None) -> dict[str, Any]:
    """A preset's three configs (its published token space unless given), or a size with default settings."""
    from vq_ar.config import ar_config
    from vq_ar.presets import PRESETS
    from vq_ar.sampling import SamplingConfig
    from vq_ar.training import TrainConfig

    space = {"vocab_size": vocab, "num_classes": classes, "grid": (grid, grid) if grid else None}
    if name in PRESETS:
        return PRESETS[name].resolved(**space)
    if name in SIZES:
        config = ar_config(name, vocab_size=vocab or 16384, num_classes=classes or 1000, grid=(grid or 16,) * 2)
        return {"name": name, "size": name, "model": config.model_dump(mode="json"),
                "train": TrainConfig().model_dump(mode="json"), "sampling": SamplingConfig().model_dump(mode="json")}
    raise click.BadParameter(f"{name!r} is no preset ({', '.join(PRESETS)}) and no size ({', '.join(SIZES)})", param_hint="--show")


@main.command(name="train")
@config_option(model="overrides")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="token shard directory")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run directory: checkpoints, metrics, model.safetensors")
@click.option("--size", type=click.Choice(list(SIZES)), default="tiny", show_default=True, help="model size (vq-ar sizes lists them)")
@click.option("--steps", type=int, default=1000, show_default=True, help="optimizer steps")
@click.option("--batch-size", type=int, default=256, show_default=True, help="global batch per optimizer step")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="micro-steps per optimizer step (--batch-size stays global)")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="peak learning rate")
@click.option("--warmup-steps", type=int, default=0, show_default=True, help="linear learning-rate warm-up steps")
@click.option("--weight-decay", type=float, default=0.05, show_default=True, help="AdamW weight decay")
@click.option("--grad-clip", type=float, default=1.0, show_default=True, help="gradient-norm clip (0 = no clipping)")
@click.option("--precision", type=click.Choice(["auto", "bf16", "fp32"]), default="auto", show_default=True,
              help="bf16: autocast on CPU and CUDA (fp32 weights and optimizer state); auto: bf16 on CUDA only")
@click.option("--compile/--no-compile", "compile", default=False, show_default=True, help="torch.compile the forward + loss step")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the initialisation and the data order")
@click.option("--log-every", type=int, default=50, show_default=True, help="steps between metric records")
@click.option("--ckpt-every", type=int, default=1000, show_default=True, help="steps between checkpoints in OUT/checkpoints")
@click.option("--ema-decay", type=float, default=0.0, show_default=True, help="weight EMA (LlamaGen's --ema: 0.9999); 0 = off")
@click.option("--stop-at", type=int, default=None, help="end this run after that step (resumable)")
@click.option("--resume", is_flag=True, help="continue OUT/checkpoints/last.safetensors")
@click.option("--no-verify", is_flag=True, help="read the token shards without checking their sha256 against the manifest")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="override a model config field, e.g. rope=1d")
@click.option("--preset", default=None, metavar="NAME",
              help="an upstream recipe (listed by vq-ar sizes; vq-ar sizes --show NAME): its size, model fields and training settings; flags given override it")
@tracking_options
@launch_options
def train_cmd(
    data: str,
    out: str,
    size: str,
    preset: str | None,
    stop_at: int | None,
    resume: bool,
    no_verify: bool,
    overrides: tuple[str, ...],
    ray_address: str | None,
    num_workers: int,
    gpus: bool,
    max_failures: int,
    storage_path: str | None,
    **kw: Any,
) -> None:
    """Train on a token shard set; the model's vocabulary, classes and grid come from its manifest."""
    from vq_ar.presets import PRESETS
    from vq_ar.training import TrainConfig, train, train_loop
    from vq_core import asks_for_ray, launch_command
    from vq_core.tracking import tracking_overrides

    if preset is not None and preset not in PRESETS:
        raise click.BadParameter(f"no preset {preset!r}; choose one of {', '.join(PRESETS)} (vq-ar sizes)", param_hint="--preset")
    tracking = tracking_overrides(kw.pop("tensorboard"), kw.pop("wandb"))
    model_overrides, train_fields = parse_overrides(overrides, "--set"), kw
    if preset is not None:
        size, model_overrides, train_fields = _with_preset(PRESETS[preset], size, model_overrides, kw)
    train_fields = {**train_fields, **tracking}
    if asks_for_ray(ray_address, num_workers, gpus):
        if stop_at is not None:
            raise click.BadParameter("--stop-at is for in-process runs", param_hint="--stop-at")
        loop = {"data": data, "out": out, "size": size, "model_overrides": model_overrides,
                "train": TrainConfig(**train_fields).model_dump(mode="json"), "resume": resume, "verify": not no_verify}
        metrics = launch_command(train_loop, loop, out=out, name="vq-ar-train", ray_address=ray_address,
                                 num_workers=num_workers, gpus=gpus, max_failures=max_failures, storage_path=storage_path)
        click.echo(json.dumps({**metrics, "model": str(Path(out) / "model.safetensors")}))
        return
    result = train(
        data,
        out,
        size=size,
        model_overrides=model_overrides,
        config=TrainConfig(**train_fields),
        resume=resume,
        stop_at=stop_at,
        verify=not no_verify,
    )
    click.echo(json.dumps({"step": result.step, **result.metrics, "model": str(result.model or result.checkpoint)}))


@main.command()
@click.option("--ckpt", required=True, type=click.Path(exists=True, dir_okay=False), help="AR checkpoint (model.safetensors or a training checkpoint)")
@click.option("--class", "classes", type=int, multiple=True, help="class label (repeatable); default: all classes")
@click.option("--n", "per_class", type=int, default=16, show_default=True, help="images per class")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="sample directory")
@click.option("--tokens-only", is_flag=True, help="write tokens.npy and the token shards OUT/tokens only (no decoder needed; `vq-tok decode OUT/tokens --ckpt TOKENIZER` decodes them later)")
@click.option("--no-cache", is_flag=True, help="recompute the prefix each step (reference path)")
@_sampling_options
def sample(ckpt: str, classes: tuple[int, ...], per_class: int, out: str, tokens_only: bool, no_cache: bool, **kw: Any) -> None:
    """Sample images of the given classes: samples/*.png and samples.npz (ADM batch), grid.png, tokens.npy,
    and tokens/ (a token shard set: `vq-tok decode OUT/tokens --ckpt TOKENIZER` decodes it)."""
    import numpy as np
    import torch
    from vq_ar.images import decode_tokens, load_pixel_decoder, write_npy, write_samples
    from vq_ar.sample_shards import SAMPLE_TOKENS_DIR, write_sample_shards
    from vq_ar.sampling import generate
    from vq_core import atomic_write_text

    device = _device(kw["device"])
    loaded = _load_for_inference(ckpt, device, kw["precision"])
    num_classes = loaded.config.num_classes
    labels_list = list(classes) or list(range(num_classes))
    bad = [c for c in labels_list if not 0 <= c < num_classes]
    if bad:
        raise click.BadParameter(f"classes {bad} are outside 0..{num_classes - 1} of {ckpt}", param_hint="--class")
    decoder = None if tokens_only else load_pixel_decoder(loaded.tokenizer, kw["tokenizer_ckpt"], device=device)
    sampling = _sampling_config(kw)
    generator = torch.Generator(device=device).manual_seed(kw["seed"])
    labels = torch.tensor([c for c in labels_list for _ in range(per_class)], dtype=torch.long)
    chunks = [
        generate(loaded.model, chunk, sampling=sampling, generator=generator, use_cache=not no_cache).cpu()
        for chunk in labels.split(kw["batch_size"])
    ]
    tokens = torch.cat(chunks)
    out_dir = Path(out)
    write_npy(out_dir / "tokens.npy", tokens.numpy().reshape(len(labels), *loaded.config.grid).astype(np.int32))
    write_npy(out_dir / "labels.npy", labels.numpy())
    record = {"ckpt": ckpt, "classes": labels_list, "per_class": per_class, "sampling": sampling.model_dump(), "seed": kw["seed"]}
    grids = tokens.numpy().reshape(len(labels), *loaded.config.grid)
    record["tokens_dir"] = str(write_sample_shards(out_dir / SAMPLE_TOKENS_DIR, loaded, grids, labels.tolist(), per_class=per_class,
                                                   record={"seed": kw["seed"], "sampling": sampling.model_dump()}))
    if decoder is not None:
        images = np.concatenate(
            [decode_tokens(decoder, t, loaded.config.grid) for t in tokens.split(kw["batch_size"])]
        )
        columns = min(per_class, 16) if len(labels_list) > 1 else math.ceil(math.sqrt(len(images)))
        record.update(write_samples(out_dir, images, labels.tolist(), per_class, columns), images=len(images))
    atomic_write_text(out_dir / "sample.json", json.dumps(record, indent=2) + "\n")
    click.echo(f"wrote {len(labels)} samples to {out_dir}")


@main.command()
@click.option("--ckpt", required=True, type=click.Path(exists=True, dir_okay=False), help="AR checkpoint (model.safetensors or a training checkpoint)")
@click.option("--data", required=True, type=click.Path(exists=True, file_okay=False), help="validation token shards")
@click.option("--n", "num_completions", type=int, default=16, show_default=True, help="half-prefix completions")
@click.option("--max-samples", type=int, default=None, help="teacher-forced samples (default: all)")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="write validate.json and completion images")
@click.option("--no-verify", is_flag=True, help="read the token shards without checking their sha256 against the manifest")
@_sampling_options
def validate(
    ckpt: str, data: str, num_completions: int, max_samples: int | None, out: str | None, no_verify: bool, **kw: Any
) -> None:
    """Teacher-forced accuracy and half-prefix completion on real token sequences."""
    import numpy as np
    import torch
    from vq_ar.data import load_token_set
    from vq_ar.images import DecoderUnavailable, decode_tokens, image_grid, load_pixel_decoder, write_npy, write_png
    from vq_ar.validation import complete_half, completion_match, teacher_forced_metrics
    from vq_core import atomic_write_text
    from vq_data import open_manifest

    device = _device(kw["device"])
    loaded = _load_for_inference(ckpt, device, kw["precision"])
    manifest = open_manifest(data)
    loaded.check_manifest(manifest, where=Path(data) / "manifest.json")
    token_set = load_token_set(data, manifest=manifest, verify=not no_verify)
    metrics: dict[str, Any] = teacher_forced_metrics(loaded.model, token_set, batch_size=kw["batch_size"], max_samples=max_samples)
    count = min(num_completions, token_set.num_samples)
    truth = torch.from_numpy(token_set.tokens[:count, 0].astype(np.int64))
    labels = torch.from_numpy(token_set.labels[:count])
    generator = torch.Generator(device=device).manual_seed(kw["seed"])
    completed = complete_half(loaded.model, truth, labels, sampling=_sampling_config(kw), generator=generator).cpu()
    metrics["completion_match"] = completion_match(completed, truth, loaded.config.seq_len // 2)
    metrics["num_completions"] = count
    click.echo(json.dumps(metrics))
    if out is None:
        return
    out_dir = Path(out)
    atomic_write_text(out_dir / "validate.json", json.dumps({"ckpt": ckpt, "data": data, **metrics}, indent=2) + "\n")
    write_npy(out_dir / "completions.npy", completed.numpy().astype(np.int32))
    try:
        decoder = load_pixel_decoder(loaded.tokenizer, kw["tokenizer_ckpt"], device=device)
    except DecoderUnavailable as err:
        log.warning("no completion images: %s", err)
        return
    originals = decode_tokens(decoder, truth, loaded.config.grid)
    completions = decode_tokens(decoder, completed, loaded.config.grid)
    pairs = np.stack([originals, completions], axis=1).reshape(-1, *originals.shape[1:])
    write_png(out_dir / "completions.png", image_grid(pairs, columns=2))
    click.echo(f"wrote {out_dir / 'completions.png'} (left: original, right: second half sampled)")


@main.group()
def convert() -> None:
    """Convert published AR checkpoints into vq-ar checkpoints."""


@convert.command(name="llamagen")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="directory for model.safetensors")
@click.option("--size", type=click.Choice(["B", "L", "XL", "XXL"]), default=None, help="GPT size [read off the shapes]")
@click.option("--n-head", type=int, default=None, help="attention heads of a model that is no named size")
@click.option("--grid", type=int, default=None, help="token grid side [freqs_cis, else the name: c2i_L_256 -> 16]")
@click.option("--tokenizer", type=click.Path(exists=True, dir_okay=False), default=None,
              help="the GPT's VQ, converted with `vq-tok convert llamagen`, so `sample` can decode")
@click.option("--ema", is_flag=True, help="convert the 'ema' weights of a LlamaGen --ema run")
@click.option("--trust-pickle", is_flag=True, help="unpickle the file in full (it may run code): only files you trust")
def convert_llamagen_cmd(checkpoint: str, out: str, **kw: Any) -> None:
    """A LlamaGen class-conditional GPT release (c2i_B_256.pt ...) -> OUT/model.safetensors."""
    from vq_ar.convert_llamagen import convert_llamagen
    from vq_ar.training import FINAL_MODEL

    path, config = convert_llamagen(checkpoint, Path(out) / FINAL_MODEL, **kw)
    click.echo(json.dumps({"model": str(path), "n_layer": config.n_layer, "dim": config.dim, "n_head": config.n_head,
                           "grid": list(config.grid), "vocab_size": config.vocab_size, "num_classes": config.num_classes}))
