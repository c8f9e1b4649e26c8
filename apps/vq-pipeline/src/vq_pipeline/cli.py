"""``vq-pipeline``: run the whole pipeline from one YAML config, or check a config before a long run."""

from __future__ import annotations

import json
from typing import Any

import click

from vq_core import ConfigError
from vq_core.cli_common import vq_cli
from vq_core.overrides import merge_overrides, parse_overrides


def _load(config: str, ray: dict[str, Any], pairs: tuple[str, ...] = ()) -> Any:
    """CONFIG with the dotted ``KEY=VALUE`` overrides and the Ray flags applied, validated as a whole."""
    from vq_pipeline.config import load_config
    from vq_pipeline.overrides import override_problems
    from vq_pipeline.presets import preset_problems

    overrides = merge_overrides(parse_overrides(pairs, "CONFIG KEY=VALUE"), {"ray": ray} if ray else {})
    loaded = load_config(config, overrides=overrides)
    problems = preset_problems(loaded) + override_problems(loaded)
    if problems:
        raise ConfigError("; ".join(problems) + f" ({config}); fix the named field and re-run `vq-pipeline check`")
    return loaded


@vq_cli("vq-pipeline")
def main() -> None:
    """End-to-end: data -> tokenizer -> (pixel decoder) -> tokens -> AR -> samples -> evaluation report."""


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="run directory (re-runs skip finished stages)")
@click.option("--ray-address", default=None, help="run trainers/tokenizing on Ray: 'local' (started here) or 'auto' (cluster)")
@click.option("--num-workers", type=int, default=None, help="Ray Train workers / tokenizer actors (config: ray.num_workers)")
@click.option("--gpus/--no-gpus", default=None, help="one GPU per Ray worker (config: ray.use_gpu)")
@click.option("--max-failures", type=int, default=None, help="worker restarts from the last checkpoint (config: ray.max_failures)")
@click.option("--storage-path", default=None, help="Ray Train storage, shared by all nodes (default <out>/ray)")
def run(
    config: str, overrides: tuple[str, ...], out: str, ray_address: str | None, num_workers: int | None, gpus: bool | None, max_failures: int | None,
    storage_path: str | None,
) -> None:
    """Run every stage of CONFIG into --out, skipping stages already complete, and write the report.

    KEY=VALUE arguments override CONFIG's fields by dotted path (tokenizer.train.steps=100 ar.size=B).
    """
    from vq_eval import format_table

    from vq_pipeline.pipeline import run_pipeline

    flags = {"address": ray_address, "num_workers": num_workers, "use_gpu": gpus, "max_failures": max_failures, "storage_path": storage_path}
    result = run_pipeline(_load(config, {k: v for k, v in flags.items() if v is not None}, overrides), out)
    for stage in result.stages:
        click.echo(f"{stage.name:14s} {'skipped (complete)' if stage.skipped else f'{stage.seconds:7.1f}s'}")
    click.echo(format_table(result.metrics))
    skipped = result.stage("eval").outputs["metrics"].get("skipped", {})
    for name, reason in skipped.items():
        click.echo(f"not computed: {name} ({reason})")
    report = result.report.parent
    click.echo(f"report: {result.report} and {report / 'report.html'}")
    click.echo(f"reconstruction grid: {report / 'reconstructions.png'}")
    click.echo(f"sample grid: {report / 'samples.png'}")
    click.echo(f"total: {result.seconds:.1f}s")


@main.command()
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.argument("overrides", nargs=-1, metavar="[KEY=VALUE]...")
def check(config: str, overrides: tuple[str, ...]) -> None:
    """Validate CONFIG (fields, preset names, the fields inside every overrides/loss dict) without running
    anything; print it resolved.  KEY=VALUE arguments override its fields as in ``run``."""
    click.echo(json.dumps(_load(config, {}, overrides).model_dump(mode="json"), indent=2))
