"""The run's report: ``report/metrics.json``, ``report/report.html`` (vq-eval's, pictures embedded),
``report/report.md`` and the grids as PNGs next to them (with a judge stage: its labelled sample grid per
guidance scale and a table comparing the scales)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vq_core import atomic_write_text
from vq_eval import Picture, write_report

from vq_pipeline.config import PipelineConfig
from vq_pipeline.judged import scale_name
from vq_pipeline.stages import StageResult

if TYPE_CHECKING:
    from vq_pipeline.pipeline import PipelineResult

RECONSTRUCTION_PNG = "reconstructions"
SAMPLES_PNG = "samples"


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
    write_report(directory, result.metrics, pictures, title="vq-pipeline report", details=details)
    lines = [
        "# vq-pipeline report",
        "",
        f"Output directory `{result.out}`; metrics also in `metrics.json`, pictures embedded in `report.html`.",
        "",
        *(judged_section(result.metrics, scales) if judged is not None else []),
        "## All metrics",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {k} | {_value(v)} |" for k, v in result.metrics.items()),
        "",
        "| detail | value |",
        "| --- | --- |",
        *(f"| {k} | {_value(v).replace('|', '/')} |" for k, v in details.items()),
        "",
        f"![reconstructions]({RECONSTRUCTION_PNG}.png)",
        "",
        f"*{pictures[0].caption}*",
        "",
        f"![samples]({SAMPLES_PNG}.png)",
        "",
        f"*{pictures[1].caption}*",
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
