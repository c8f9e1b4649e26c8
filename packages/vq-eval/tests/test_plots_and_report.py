"""Pictures show what they claim (checked on their pixel arrays) and the report embeds them."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vq_eval import (
    Picture,
    codebook_usage_figure,
    format_table,
    patches_per_token,
    png_bytes,
    reconstruction_grid,
    tokenizer_report,
    write_report,
)


def _u8(images: torch.Tensor) -> np.ndarray:
    return images.add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_reconstruction_grid_layout() -> None:
    originals = torch.rand(3, 3, 16, 20) * 2 - 1
    recons = torch.rand(3, 3, 16, 20) * 2 - 1
    grid = np.asarray(reconstruction_grid(originals, recons, pairs_per_row=2, pad=1, min_size=32))
    scale, gap = 2, 2  # 16 px -> x2 to reach 32; pairs separated by 2 * pad
    h, w = 16 * scale, 20 * scale
    assert grid.shape == (2 * (h + gap) + gap, 2 * (2 * w + gap) + gap, 3)
    up = lambda a: a.repeat(scale, axis=0).repeat(scale, axis=1)  # noqa: E731
    o, r = _u8(originals), _u8(recons)
    # second pair sits in the top row, right column: original then reconstruction, touching
    left = gap + (2 * w + gap)
    np.testing.assert_array_equal(grid[gap : gap + h, left : left + w], up(o[1]))
    np.testing.assert_array_equal(grid[gap : gap + h, left + w : left + 2 * w], up(r[1]))
    # the unused fourth slot is blank
    assert (grid[2 * gap + h + 1 :, gap + 2 * w + gap + 1 :] == 255).all()


def test_patches_per_token_rows_hold_their_codes_patches() -> None:
    """Solid 4x4 blocks whose colour encodes the code: every tile of a row must be that code's colour."""
    rng = np.random.default_rng(0)
    tokens = torch.from_numpy(rng.choice(6, size=(5, 3, 3), p=[0.4, 0.25, 0.15, 0.1, 0.06, 0.04]))
    colours = torch.linspace(-1, 1, 6)
    images = colours[tokens].repeat_interleave(4, 1).repeat_interleave(4, 2)[:, None].expand(-1, 3, -1, -1)
    figure = patches_per_token(images, tokens, top_codes=4, patches=3, min_patch_pixels=8)
    mosaic = figure.axes[0].images[0].get_array()
    labels = [t.get_text() for t in figure.axes[0].get_yticklabels()]
    counts = np.bincount(tokens.flatten().numpy(), minlength=6)
    top = np.argsort(-counts, kind="stable")[:4]
    assert labels == [f"code {c} ({counts[c]})" for c in top]
    tile = 8  # 4 px patches upscaled x2
    for row, code in enumerate(top):
        value = round((float(colours[code]) + 1) * 127.5)
        for col in range(3):
            top_left = (1 + row * (tile + 1), 1 + col * (tile + 1))
            block = mosaic[top_left[0] : top_left[0] + tile, top_left[1] : top_left[1] + tile]
            assert (block == value).all(), (code, col)
    assert png_bytes(figure).startswith(b"\x89PNG")


def test_usage_figure_titles() -> None:
    counts = torch.tensor([50, 20, 0, 5, 0, 1, 0, 0])
    figure = codebook_usage_figure(counts)
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["usage 4/8 codes (50.0%)", "76 tokens; 4 codes never used"]
    line = figure.axes[0].lines[0].get_ydata()
    np.testing.assert_allclose(line[:4], [50 / 76, 20 / 76, 5 / 76, 1 / 76])


def test_report_embeds_pictures(tmp_path: Path) -> None:
    picture = Image.fromarray(np.full((4, 6, 3), 200, np.uint8))
    path = write_report(
        tmp_path / "out", {"psnr": 25.123456, "num_images": 3}, [Picture("grid", png_bytes(picture), "a <grid>")], details={"source": "x"}
    )
    page = path.read_text()
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == 1 and base64.b64decode(embedded[0]) == (tmp_path / "out" / "grid.png").read_bytes()
    assert Image.open(io.BytesIO(base64.b64decode(embedded[0]))).size == (6, 4)
    assert "25.1235" in page and "a &lt;grid&gt;" in page
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == {"psnr": 25.123456, "num_images": 3, "details": {"source": "x"}}
    assert format_table({"psnr": 25.123456, "n": 3}).splitlines()[2:] == ["psnr  25.1235", "n     3"]


def test_tokenizer_report_writes_everything(tmp_path: Path, stub_tokenizer, photo_batches) -> None:
    result, report = tokenizer_report(stub_tokenizer, photo_batches(5, 2), tmp_path, metrics=["psnr", "usage"], examples=3, token_images=4)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["codebook_usage.png", "metrics.json", "patches_per_token.png", "reconstructions.png", "report.html"]
    assert json.loads((tmp_path / "metrics.json").read_text()) == result
    assert report.read_text().count("data:image/png;base64,") == 3
    grid = Image.open(tmp_path / "reconstructions.png")
    assert grid.size[1] < grid.size[0]  # 3 pairs on one row
