"""The report's training pictures and tables: loss curves from each trainer's ``metrics.jsonl``, the codebook
usage of the token shards, per-stage times, and the split of metrics into evaluation vs training internals.

Loss curves are drawn with matplotlib when it is installed and with plain PIL otherwise, so a minimal
install still gets a picture.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

TRAINERS = ("tokenizer", "pixel_decoder", "ar")
"""Stages that run a trainer (each writes ``<stage dir>/metrics.jsonl``); their final metrics are prefixed so."""
COUNTS = ("train_images", "token_samples", "generated_images")
LOSS_TERMS = ("l1", "rec", "quant", "perceptual", "gan")
"""Loss terms the trainers log under names without "loss" in them."""
USAGE_SAMPLE_LIMIT = 20000
"""Token grids read for the usage picture: enough for a stable histogram, bounded for ImageNet-sized runs."""


def read_curves(path: Path) -> dict[str, list[tuple[float, float]]]:
    """``{metric: [(step, value), ...]}`` of the loss-like metrics in a metrics.jsonl (torn lines skipped)."""
    curves: dict[str, list[tuple[float, float]]] = {}
    if not path.is_file():
        return curves
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        for key, value in entry.items():
            if ("loss" in key or key in LOSS_TERMS) and isinstance(value, (int, float)) and np.isfinite(value):
                curves.setdefault(key, []).append((float(entry["step"]), float(value)))
    return curves


def loss_curves_png(runs: dict[str, Path]) -> bytes | None:
    """One panel per trainer (``{stage name: metrics.jsonl}``) with its loss curves; None when nothing was logged."""
    panels = {name: curves for name, path in runs.items() if (curves := read_curves(path))}
    if not panels:
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        return _pil_curves(panels)
    figure = Figure(figsize=(4.2 * len(panels), 3.2))
    for i, (name, curves) in enumerate(panels.items()):
        axis = figure.add_subplot(1, len(panels), i + 1)
        for key, points in curves.items():
            steps, values = zip(*points)
            axis.plot(steps, values, label=key, linewidth=1.2, marker="o", markersize=2.5)  # a point even for one log step
        axis.set_title(f"{name} training", fontsize=10)
        axis.set_xlabel("step")
        axis.set_yscale("log" if all(v > 0 for points in curves.values() for _, v in points) else "linear")
        axis.legend(fontsize=7)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _pil_curves(panels: dict[str, dict[str, list[tuple[float, float]]]]) -> bytes:
    """The same panels as polylines on a white PIL canvas, each curve scaled to its panel (no axes text beyond labels)."""
    from PIL import Image, ImageDraw

    width, height, pad = 360, 240, 24
    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
    canvas = Image.new("RGB", (width * len(panels), height), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (name, curves) in enumerate(panels.items()):
        left = i * width
        draw.rectangle([left + pad, pad, left + width - pad, height - pad], outline=(160, 160, 160))
        draw.text((left + pad, 4), f"{name} training", fill="black")
        for j, (key, points) in enumerate(curves.items()):
            steps, values = np.array(points).T
            x = left + pad + (steps - steps.min()) / max(np.ptp(steps), 1e-12) * (width - 2 * pad)
            y = height - pad - (values - values.min()) / max(np.ptp(values), 1e-12) * (height - 2 * pad)
            colour = colours[j % len(colours)]
            if len(points) > 1:
                draw.line(list(zip(x.tolist(), y.tolist())), fill=colour, width=2)
            draw.text((left + pad + 4, pad + 4 + 12 * j), key, fill=colour)
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return buffer.getvalue()


def token_counts(grids: Iterable[np.ndarray], codebook_size: int, *, limit: int = USAGE_SAMPLE_LIMIT) -> np.ndarray:
    """Per-code counts (K,) over at most ``limit`` token grids (bincount, no one-hot)."""
    counts = np.zeros(codebook_size, dtype=np.int64)
    for i, grid in enumerate(grids):
        if i >= limit:
            break
        counts += np.bincount(np.asarray(grid, dtype=np.int64).ravel(), minlength=codebook_size)[:codebook_size]
    return counts


def codebook_usage_png(shards: Path) -> bytes | None:
    """vq-eval's codebook-usage figure of a token shard set (None when it holds no tokens)."""
    from vq_data import iter_samples, open_manifest
    from vq_eval.plots import codebook_usage_figure, png_bytes

    manifest = open_manifest(shards)
    if manifest.tokenizer is None:
        return None
    counts = token_counts((s["tokens.npy"] for s in iter_samples(shards, manifest=manifest, verify=False)),
                          manifest.tokenizer.codebook_size)  # fmt: skip
    if not counts.any():
        return None
    return png_bytes(codebook_usage_figure(counts))


def split_metrics(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, Any]]:
    """(evaluation metrics, ``{trainer: its last training metrics}``, counts) of the pipeline's flat metrics dict."""
    training: dict[str, dict[str, Any]] = {}
    evaluation: dict[str, Any] = {}
    counts: dict[str, Any] = {}
    for key, value in metrics.items():
        trainer = next((t for t in sorted(TRAINERS, key=len, reverse=True) if key.startswith(f"{t}_")), None)
        if key in COUNTS:
            counts[key] = value
        elif trainer is not None:
            training.setdefault(trainer, {})[key[len(trainer) + 1 :]] = value
        else:
            evaluation[key] = value
    return evaluation, training, counts
