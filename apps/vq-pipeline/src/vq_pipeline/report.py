"""The run's report: ``report/metrics.json``, ``report/report.html`` (vq-eval's, pictures embedded),
``report/report.md`` and the two grids as PNGs next to them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vq_core import atomic_write_text
from vq_eval import Picture, write_report

from vq_pipeline.config import PipelineConfig
from vq_pipeline.stages import StageResult

if TYPE_CHECKING:
    from vq_pipeline.pipeline import PipelineResult

RECONSTRUCTION_PNG = "reconstructions"
SAMPLES_PNG = "samples"


def _value(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def write_pipeline_report(result: PipelineResult, config: PipelineConfig, evaluation: StageResult, samples: StageResult) -> Path:
    """Write the report files into ``<out>/report``; returns the Markdown file's path."""
    directory = result.out / "report"
    skipped = evaluation.outputs["metrics"].get("skipped", {})
    pictures = [
        Picture(RECONSTRUCTION_PNG, Path(evaluation.outputs["reconstruction_grid"]).read_bytes(),
                "tokenizer: original | reconstruction pairs of evaluation images"),
        Picture(SAMPLES_PNG, Path(samples.outputs["grid"]).read_bytes(),
                f"AR samples, one row per class ({', '.join(samples.outputs['classes'])}), CFG {config.sample.cfg_scale}"),
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
