"""Decoding and encoding of single images, with errors that name the file.

Decoding always forces a full load (``convert("RGB")``), so a truncated or corrupt file fails here,
in the job that reads it, instead of later inside a training loop.  Before that load the size in the
header is checked against ``max_pixels`` (default: PIL's own warning threshold, ~89 Mpx), so one huge
image is refused by name instead of taking gigabytes in every decoding worker.  Encoding uses fixed settings so
the same image always gives the same bytes, which keeps packed shards byte-identical across runs.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Literal

from PIL import Image, ImageFile

from vq_data.names import DEFAULT_MAX_PIXELS
from vq_data.shards import SampleError

ImageFormat = Literal["png", "jpg"]
JPEG_QUALITY = 95
PNG_COMPRESS_LEVEL = 6


class ImageDecodeError(SampleError):
    """An image file or stored image field cannot be decoded (corrupt, truncated, not an image)."""


def _pixels(count: int) -> str:
    return f"{count / 1e6:.1f} Mpx" if count >= 1_000_000 else f"{count} pixels"


def _load_rgb(opened: Image.Image, where: str, max_pixels: int | None) -> Image.Image:
    if max_pixels is not None and opened.width * opened.height > max_pixels:
        opened.close()
        raise ImageDecodeError(
            f"image {where} is {opened.width}x{opened.height} = {_pixels(opened.width * opened.height)}, more than "
            f"the cap of {_pixels(max_pixels)}; shrink it, leave it out (--skip-bad), or raise the cap (--max-pixels)"
        )
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise ImageDecodeError(
            f"PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set, so truncated images would load silently "
            f"(while reading {where}); unset it"
        )
    with opened as image:
        return image.convert("RGB")


def open_image(path: str | os.PathLike[str], *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decode an image file to PIL RGB (grey, palette, CMYK and alpha images are converted),
    refusing one whose header declares more than ``max_pixels`` pixels before decoding it."""
    path = Path(path)
    try:
        return _load_rgb(Image.open(path), str(path), max_pixels)
    except ImageDecodeError:
        raise
    except Exception as err:
        raise ImageDecodeError(f"image {path} cannot be decoded ({type(err).__name__}: {err})") from err


def decode_image(data: bytes, *, where: str, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Fully decode encoded image bytes (e.g. a shard's ``png`` field) to PIL RGB, with the same pixel cap."""
    try:
        return _load_rgb(Image.open(io.BytesIO(data)), where, max_pixels)
    except ImageDecodeError:
        raise
    except Exception as err:
        raise ImageDecodeError(f"{where}: stored image cannot be decoded ({type(err).__name__}: {err})") from err


def encode_image(image: Image.Image, image_format: ImageFormat) -> bytes:
    """Encode RGB ``image`` as PNG (lossless) or JPEG (quality 95, 4:2:0) with fixed settings."""
    buffer = io.BytesIO()
    if image_format == "png":
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    elif image_format == "jpg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling="4:2:0")
    else:
        raise ValueError(f"image format {image_format!r} is not supported; use 'png' or 'jpg'")
    return buffer.getvalue()
