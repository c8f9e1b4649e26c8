"""Encoding pictures (PIL images or matplotlib figures) as PNG bytes for files and HTML embedding."""

from __future__ import annotations

import io

from matplotlib.figure import Figure
from PIL import Image


def png_bytes(picture: Image.Image | Figure, *, dpi: int = 110) -> bytes:
    """PNG encoding of ``picture``; figures are rendered with the Agg backend and closed-over nothing."""
    buffer = io.BytesIO()
    if isinstance(picture, Figure):
        picture.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    else:
        picture.save(buffer, format="PNG")
    return buffer.getvalue()
