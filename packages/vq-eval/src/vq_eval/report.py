"""Metrics JSON, a plain-text table, and a self-contained HTML report with the pictures embedded.

The HTML embeds every picture as a base64 PNG so the single file can be mailed or attached to an
experiment tracker; the PNGs are also written next to it for slides.  All files are written
atomically, so a report directory never holds a half-written file.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vq_core import atomic_write_bytes, atomic_write_text

METRICS_NAME = "metrics.json"
REPORT_NAME = "report.html"


@dataclass(frozen=True)
class Picture:
    """A PNG for the report: ``name`` becomes ``<name>.png``; ``caption`` explains how to read it."""

    name: str
    png: bytes
    caption: str = ""


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def format_table(metrics: Mapping[str, Any]) -> str:
    """Two aligned columns, metric and value, for printing."""
    width = max((len(key) for key in metrics), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  {'-' * 12}"]
    lines += [f"{key:<{width}}  {_format_value(value)}" for key, value in metrics.items()]
    return "\n".join(lines)


def write_metrics(path: str | os.PathLike[str], metrics: Mapping[str, Any]) -> Path:
    """Atomically write ``metrics`` as indented JSON."""
    path = Path(path)
    atomic_write_text(path, json.dumps(dict(metrics), indent=2, sort_keys=False) + "\n")
    return path


def write_report(
    directory: str | os.PathLike[str],
    metrics: Mapping[str, Any],
    pictures: Sequence[Picture] = (),
    *,
    title: str = "vq-eval report",
    details: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``metrics.json``, each picture's PNG and ``report.html`` into ``directory``; return the HTML path.

    ``details`` (source, checkpoint, settings) go into the JSON under ``"details"`` and into a second
    table of the HTML.
    """
    directory = Path(directory)
    payload = dict(metrics)
    if details:
        payload["details"] = dict(details)
    write_metrics(directory / METRICS_NAME, payload)
    for picture in pictures:
        atomic_write_bytes(directory / f"{picture.name}.png", picture.png)

    def table(rows: Mapping[str, Any]) -> str:
        cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_format_value(v))}</td></tr>" for k, v in rows.items())
        return f"<table>{cells}</table>"

    figures = "".join(
        f'<figure><img alt="{html.escape(p.name)}" src="data:image/png;base64,{base64.b64encode(p.png).decode("ascii")}">'
        f"<figcaption>{html.escape(p.caption)}</figcaption></figure>"
        for p in pictures
    )
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }}
table {{ border-collapse: collapse; margin-bottom: 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.8em; text-align: left; font-variant-numeric: tabular-nums; }}
th {{ background: #f4f4f4; font-weight: 600; }}
figure {{ margin: 1.5em 0; }} img {{ max-width: 100%; }} figcaption {{ color: #555; font-size: 0.9em; }}
</style></head><body>
<h1>{html.escape(title)}</h1><p>{created}, metrics also in <code>{METRICS_NAME}</code></p>
<h2>Metrics</h2>{table(metrics)}
{f"<h2>Details</h2>{table(details)}" if details else ""}
{f"<h2>Pictures</h2>{figures}" if pictures else ""}
</body></html>
"""
    path = directory / REPORT_NAME
    atomic_write_text(path, page)
    return path
