"""The run's report: ``report/metrics.json``, ``report/report.html`` (vq-eval's, pictures embedded),
``report/report.md`` in sections (data, tokenizer, AR model, samples, evaluation apart from the training
internals, stage times; loss curves and codebook usage from :mod:`vq_pipeline.report_figures`) and the grids as PNGs next to them (with a judge stage: its labelled sample grid per
guidance scale and a table comparing the scales)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vq_core import atomic_write_text
from vq_core.tracking import METRICS_FILE
from vq_eval import Picture, write_report

from vq_pipeline.config import PipelineConfig
from vq_pipeline.judged import scale_name
from vq_pipeline.report_figures import TRAINERS, codebook_usage_png, loss_curves_png, split_metrics
from vq_pipeline.stages import StageResult

if TYPE_CHECKING:
    from vq_pipeline.pipeline import PipelineResult

RECONSTRUCTION_PNG = "reconstructions"
SAMPLES_PNG = "samples"
LOSS_CURVES_PNG = "loss_curves"
USAGE_PNG = "codebook_usage"


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


JUDGED_ROWS = (
    ("class_accuracy", "samples judged as their class", "{:.1%}"),
    ("frechet", "Fréchet distance to real images (judge's PCA features)", "{:.3f}"),
    ("precision", "precision (k-NN, k=3)", "{:.3f}"),
    ("recall", "recall (k-NN, k=3)", "{:.3f}"),
)


def judged_section(metrics: dict[str, Any], scales: list[float]) -> list[str]:
    """Markdown: the judge's ceiling, the judged reconstructions, and the samples at each guidance scale side by side."""
    names = [scale_name(s) for s in scales]
    header = " | ".join("no CFG (1.0)" if s == 1.0 else f"CFG {s:g}" for s in scales)
    return [
        "## Judged by an independent classifier",
        "",
        f"A PCA -> RBF-SVC judge fitted on {metrics['judge_fit_images']} held-out real images (never seen by the tokenizer or "
        f"the AR model) judges {metrics['judge_recon_images']} real training images correctly {metrics['judge_ceiling']:.1%} "
        "of the time: the ceiling of every accuracy below.",
        "",
        "| reconstructions | value |",
        "| --- | --- |",
        f"| judged as the original's class | {metrics['judge_recon_accuracy']:.1%} |",
        f"| PSNR (dB) | {metrics['judge_recon_psnr']:.2f} |",
        f"| SSIM | {metrics['judge_recon_ssim']:.3f} |",
        "",
        f"| samples ({metrics[f'judge_{names[0]}_num_samples']} a scale) | {header} |",
        "| --- |" + " --- |" * len(scales),
        *(f"| {label} | " + " | ".join(fmt.format(metrics[f"judge_{n}_{key}"]) for n in names) + " |" for key, label, fmt in JUDGED_ROWS),
        "",
        *(line for n, s in zip(names, scales) for line in (
            f"![samples {n}](samples_{n}.png)", "",
            f"*AR samples, one row per class, {'no guidance' if s == 1.0 else f'CFG {s:g}'}; red frame: judged as another class*", "",
        )),
    ]


def _training_pictures(result: PipelineResult) -> list[Picture]:
    """Loss curves of every trainer's metrics.jsonl and the codebook usage of the token shards (those that exist)."""
    runs = {s.name: s.directory / METRICS_FILE for s in result.stages if s.name in TRAINERS}
    pictures = []
    curves = loss_curves_png(runs)
    if curves is not None:
        pictures.append(Picture(LOSS_CURVES_PNG, curves, "training loss curves of each trainer (from its metrics.jsonl)"))
    tokens = next((s for s in result.stages if s.name == "tokens"), None)
    shards = Path(tokens.outputs["shards"]) if tokens is not None and "shards" in tokens.outputs else None
    usage = codebook_usage_png(shards) if shards is not None and shards.is_dir() else None
    if usage is not None:
        pictures.append(Picture(USAGE_PNG, usage, "codebook usage of the training token shards (codes by frequency, count histogram)"))
    return pictures


def write_pipeline_report(
    result: PipelineResult, config: PipelineConfig, evaluation: StageResult, samples: StageResult, judged: StageResult | None = None
) -> Path:
    """Write the report files into ``<out>/report``; returns the Markdown file's path."""
    directory = result.out / "report"
    skipped = evaluation.outputs["metrics"].get("skipped", {})
    scales = config.judge.scales(config.sample.cfg_scale) if judged is not None and config.judge is not None else []
    judged_pictures = [
        Picture(f"samples_{name}", Path(judged.outputs[f"grid_{name}"]).read_bytes(),
                f"AR samples judged, one row per class, {'no guidance' if s == 1.0 else f'CFG {s:g}'}")
        for s in scales if judged is not None for name in [scale_name(s)]
    ]
    pictures = [
        Picture(RECONSTRUCTION_PNG, Path(evaluation.outputs["reconstruction_grid"]).read_bytes(),
                "tokenizer: original | reconstruction pairs of evaluation images"),
        Picture(SAMPLES_PNG, Path(samples.outputs["grid"]).read_bytes(),
                f"AR samples, one row per class ({', '.join(samples.outputs['classes'])}), CFG {config.sample.cfg_scale}"),
        *judged_pictures,
    ]
    stages = {s.name: ("skipped (already complete)" if s.skipped else f"{s.seconds:.1f}s") for s in result.stages}
    details = {
        "tokenizer": f"{config.tokenizer.family}/{config.tokenizer.preset}"
        + (f" + pixel decoder {config.tokenizer.pixel_decoder.preset}" if config.tokenizer.pixel_decoder else ""),
        "token space": evaluation.outputs.get("token_space", "?"),
        "ar": config.ar.size,
        "data": config.data.source if config.data.path is None else f"{config.data.source}:{config.data.path}",
        **{f"stage {name}": text for name, text in stages.items()},
        **{f"skipped {name}": reason for name, reason in skipped.items()},
        "total time": f"{result.seconds:.1f}s",
    }
    training_pictures = _training_pictures(result)
    pictures += training_pictures
    write_report(directory, result.metrics, pictures, title="vq-pipeline report", details=details)
    evaluation_metrics, training, counts = split_metrics(result.metrics)
    figure_of = {p.name: p for p in pictures}

    def figure(name: str) -> list[str]:
        return [f"![{name}]({name}.png)", "", f"*{figure_of[name].caption}*", ""] if name in figure_of else []

    def table(header: str, rows: dict[str, Any]) -> list[str]:
        return [f"| {header} | value |", "| --- | --- |", *(f"| {k} | {_value(v).replace('|', '/')} |" for k, v in rows.items()), ""]

    lines = [
        "# vq-pipeline report",
        "",
        f"Output directory `{result.out}`; metrics also in `metrics.json`, pictures embedded in `report.html`.",
        "",
        *(judged_section(result.metrics, scales) if judged is not None else []),
        "## Data",
        "",
        *table("data", {"source": details["data"], "train images": counts.get("train_images", "?"),
                        "token samples": counts.get("token_samples", "?")}),
        "## Tokenizer",
        "",
        *table("tokenizer", {"model": details["tokenizer"], "token space": details["token space"]}),
        *(line for name in ("tokenizer", "pixel_decoder") if name in training
          for line in [f"Last training metrics ({name.replace('_', ' ')}; training internals, not evaluation):", "", *table("metric", training[name])]),
        *figure(LOSS_CURVES_PNG),
        *figure(USAGE_PNG),
        *figure(RECONSTRUCTION_PNG),
        "## AR model",
        "",
        *table("AR", {"model": details["ar"]}),
        *(["Last training metrics (training internals, not evaluation):", "", *table("metric", training["ar"])] if "ar" in training else []),
        "## Samples",
        "",
        *table("samples", {"generated images": counts.get("generated_images", "?"), "CFG scale": config.sample.cfg_scale}),
        *figure(SAMPLES_PNG),
        "## Evaluation",
        "",
        *table("metric", evaluation_metrics),
        *(table("skipped", skipped) if skipped else []),
        "## Stage times",
        "",
        "| stage | time |",
        "| --- | --- |",
        *(f"| {name} | {text} |" for name, text in stages.items()),
        f"| total | {result.seconds:.1f}s |",
        "",
        "## Config",
        "",
        "```json",
        json.dumps(config.model_dump(mode="json"), indent=2),
        "```",
        "",
    ]
    path = directory / "report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
