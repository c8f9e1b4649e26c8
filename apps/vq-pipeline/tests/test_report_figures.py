"""Report pictures and tables: loss curves from metrics.jsonl (matplotlib, or PIL without it), code counts,
and evaluation metrics kept apart from training internals."""

from __future__ import annotations

import builtins
import io
import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from vq_pipeline.report_figures import loss_curves_png, read_curves, split_metrics, token_counts


@pytest.fixture
def metrics_file(tmp_path):  # noqa: ANN001, ANN201
    path = tmp_path / "metrics.jsonl"
    rows = [{"step": s, "loss": 1.0 / s, "token_acc": 0.1 * s, "rec": 2.0 / s} for s in (1, 2, 3)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"step": 4, "lo')  # a torn last line
    return path


def test_curves_are_the_loss_columns_of_metrics_jsonl(metrics_file) -> None:  # noqa: ANN001
    assert read_curves(metrics_file) == {"loss": [(1.0, 1.0), (2.0, 0.5), (3.0, 1 / 3)], "rec": [(1.0, 2.0), (2.0, 1.0), (3.0, 2 / 3)]}


@pytest.mark.parametrize("without_matplotlib", [False, True])
def test_loss_curves_png_with_and_without_matplotlib(metrics_file, tmp_path, monkeypatch, without_matplotlib) -> None:  # noqa: ANN001
    if without_matplotlib:
        real_import = builtins.__import__

        def no_matplotlib(name, *args, **kwargs):  # noqa: ANN001, ANN202
            if name.startswith("matplotlib"):
                raise ImportError(name)
            return real_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    png = loss_curves_png({"tokenizer": metrics_file, "ar": metrics_file, "absent": tmp_path / "none.jsonl"})
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG" and image.size[0] > image.size[1]  # two panels side by side
    assert loss_curves_png({"absent": tmp_path / "none.jsonl"}) is None


def test_token_counts_match_a_counter() -> None:
    grids = [np.random.default_rng(i).integers(0, 10, size=(4, 4)) for i in range(5)]
    expected = Counter(int(t) for g in grids[:3] for t in g.ravel())
    counts = token_counts(grids, 12, limit=3)
    assert counts.tolist() == [expected.get(k, 0) for k in range(12)]


def test_split_keeps_evaluation_apart_from_training_internals() -> None:
    flat = {"psnr": 20.0, "codebook_usage": 0.5, "tokenizer_loss": 0.3, "pixel_decoder_l1": 0.2, "ar_loss": 4.0,
            "train_images": 10, "judge_ceiling": 0.9}  # fmt: skip
    evaluation, training, counts = split_metrics(flat)
    assert evaluation == {"psnr": 20.0, "codebook_usage": 0.5, "judge_ceiling": 0.9}
    assert training == {"tokenizer": {"loss": 0.3}, "pixel_decoder": {"l1": 0.2}, "ar": {"loss": 4.0}}
    assert counts == {"train_images": 10}
