"""From sampled tokens to image files: find and verify the pixel decoder, decode, tile, write atomically.

``vq-ar sample --out S`` lays its output out so that evaluators count samples and nothing else:
``S/samples/`` holds one PNG per sample and nothing more, ``S/samples.npz`` the same images as an ADM
sample batch (``arr_0`` uint8 (N, H, W, 3), ``arr_1`` labels - what guided-diffusion's evaluator and
``vq-eval generation`` read), while ``grid.png``, ``tokens.npy`` and ``sample.json`` stay at the top
level; ``sample.json`` names the batch (``samples_npz``) and folder (``samples_dir``).

The decoder is the tokenizer (or pixel decoder) checkpoint named by the manifest the AR model was
trained on, or one given explicitly.  Its ``token_space_hash`` (config and token-deciding weights) must
equal the identity the manifest recorded - a decoder of another token space, even one of the same
preset with other weights, would turn valid samples into noise without any error.
``vq_tokenizers`` is imported here, lazily, so training and sampling tokens never need it.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from vq_core import ManifestError, TokenizerInfo, atomic_write_bytes

if TYPE_CHECKING:
    from vq_tokenizers import Tokenizer


class DecoderUnavailable(RuntimeError):
    """No decoder can be had: none recorded, its file is gone, or the tokenizer cannot decode."""


def load_pixel_decoder(
    info: TokenizerInfo, override: str | os.PathLike[str] | None = None, *, device: torch.device | str = "cpu"
) -> Tokenizer:
    """Load the decoder for tokens described by ``info`` and check that it decodes that token space.

    Raises :class:`DecoderUnavailable` when there is none to load and ``ManifestError`` when the one
    found belongs to another token space.
    """
    path = override if override is not None else info.checkpoint
    if path is None:
        raise DecoderUnavailable(
            f"the token manifest records no tokenizer checkpoint for '{info.name}' ({info.config_hash}); "
            "pass --tokenizer CKPT (a tokenizer or pixel decoder of that token space)"
        )
    if not Path(path).is_file():
        raise DecoderUnavailable(
            f"tokenizer checkpoint {path} (tokenizer.checkpoint of the manifest) does not exist; "
            "pass --tokenizer CKPT to point at its current location"
        )
    from vq_tokenizers import load_tokenizer

    tokenizer = load_tokenizer(path, map_location=device)
    problems = []
    if tokenizer.token_space_hash() != info.config_hash:
        if info.checkpoint is None:
            origin = f"token space {info.config_hash}"
        elif Path(info.checkpoint) != Path(path):
            origin = f"{info.checkpoint} (token space {info.config_hash})"
        else:
            origin = f"the file this path held when tokenizing (token space {info.config_hash}; it was replaced since)"
        problems.append(f"token space {tokenizer.token_space_hash()} but the AR model's tokens come from {origin}")
    if tokenizer.codebook_size != info.codebook_size:
        problems.append(f"codebook {tokenizer.codebook_size} but the manifest says {info.codebook_size}")
    if problems:
        raise ManifestError(f"tokenizer {path} has " + " and ".join(problems) + f"; pass the '{info.name}' tokenizer that made the shards")
    if not tokenizer.can_decode:
        raise DecoderUnavailable(f"tokenizer {path} ({tokenizer.family}) has no pixel decoder; train one with `vq-tok train-pixel-decoder`")
    return tokenizer


@torch.no_grad()
def decode_tokens(tokenizer: Tokenizer, tokens: torch.Tensor, grid: tuple[int, ...]) -> np.ndarray:
    """Tokens (B, seq_len) -> uint8 images (B, H, W, 3) via the decoder's [-1, 1] output."""
    param = next(tokenizer.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    images = tokenizer.decode(tokens.reshape(tokens.shape[0], *grid).to(device))
    scaled = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).cpu().numpy()


def image_grid(images: np.ndarray, *, columns: int, pad: int = 2) -> np.ndarray:
    """Tile (B, H, W, 3) uint8 images row-major into one image with ``pad`` black pixels between."""
    count, height, width, channels = images.shape
    rows = -(-count // columns)
    canvas = np.zeros((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        y, x = pad + r * (height + pad), pad + c * (width + pad)
        canvas[y : y + height, x : x + width] = image
    return canvas


def write_png(path: str | os.PathLike[str], image: np.ndarray) -> Path:
    """Encode a (H, W, 3) uint8 image as PNG and write it atomically."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


SAMPLES_DIR = "samples"
SAMPLES_NPZ = "samples.npz"


def write_sample_batch(path: str | os.PathLike[str], images: np.ndarray, labels: np.ndarray) -> Path:
    """ADM's sample batch: ``np.savez(path, images, labels)``, i.e. ``arr_0`` uint8 NHWC and ``arr_1``, atomically."""
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"sample batch {path}: images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    buffer = io.BytesIO()
    np.savez(buffer, images, np.asarray(labels, dtype=np.int64))
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def write_samples(out_dir: str | os.PathLike[str], images: np.ndarray, labels: list[int], per_class: int, columns: int) -> dict[str, str]:
    """Write the samples (folder of PNGs and ADM ``.npz``) and, apart from them, ``grid.png``; return the record's fields."""
    out_dir = Path(out_dir)
    for i, (image, label) in enumerate(zip(images, labels)):
        write_png(out_dir / SAMPLES_DIR / f"class{label:04d}_{i % per_class:04d}.png", image)
    write_sample_batch(out_dir / SAMPLES_NPZ, images, np.asarray(labels))
    write_png(out_dir / "grid.png", image_grid(images, columns=columns))
    return {"samples_npz": SAMPLES_NPZ, "samples_dir": SAMPLES_DIR, "grid": "grid.png"}


def write_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write an array as .npy atomically."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
