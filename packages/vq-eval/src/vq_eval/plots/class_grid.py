"""A labelled sample grid a person can check by eye: one row per class, its name at the left.

Images are enlarged by an integer factor with nearest-neighbour (tiny 16 px samples stay sharp instead
of being smoothed by a viewer).  When the judged classes are given, every image judged as another class
than its row gets a red frame, and each row ends with ``judged k/n``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (255, 255, 255)
WRONG = (220, 30, 30)


def class_rows_grid(
    images: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
    *,
    judged: Sequence[int] | np.ndarray | None = None,
    per_row: int | None = None,
    min_size: int = 48,
    pad: int = 4,
) -> Image.Image:
    """(N, H, W, 3) uint8 images of classes ``labels`` -> one row per class present (in class order),
    at most ``per_row`` images a row, labelled with the class name (and the judged count)."""
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(labels) != len(images):
        raise ValueError(f"class_rows_grid needs (N, H, W, 3) uint8 images and N labels, got {images.shape} {images.dtype}, {len(labels)} labels")
    classes = sorted(set(labels.tolist()))
    rows = [np.flatnonzero(labels == c)[:per_row] for c in classes]
    columns = max(len(r) for r in rows)
    scale = max(1, -(-min_size // min(images.shape[1:3])))
    h, w = images.shape[1] * scale, images.shape[2] * scale
    font = ImageFont.load_default(size=max(12, h // 2))
    label_width = max(int(font.getlength(class_names[c] if c < len(class_names) else str(c))) for c in classes) + 2 * pad
    tail = int(font.getlength(f"judged {columns}/{columns}")) + 2 * pad if judged is not None else 0
    canvas = Image.new("RGB", (label_width + columns * (w + pad) + pad + tail, len(rows) * (h + pad) + pad), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for r, (c, members) in enumerate(zip(classes, rows)):
        top = pad + r * (h + pad)
        name = class_names[c] if c < len(class_names) else str(c)
        draw.text((pad, top + h // 2), name, fill=(0, 0, 0), font=font, anchor="lm")
        for col, index in enumerate(members):
            left = label_width + col * (w + pad)
            canvas.paste(Image.fromarray(images[index]).resize((w, h), Image.Resampling.NEAREST), (left, top))
            if judged is not None and judged[index] != c:
                draw.rectangle((left - 2, top - 2, left + w + 1, top + h + 1), outline=WRONG, width=2)
        if judged is not None:
            right = [judged[i] == c for i in members]
            draw.text((label_width + columns * (w + pad) + pad, top + h // 2), f"judged {sum(right)}/{len(right)}",
                      fill=(0, 0, 0), font=font, anchor="lm")
    return canvas
