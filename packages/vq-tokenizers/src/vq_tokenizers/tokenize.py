"""Images -> token shards (resumable), token shards -> images, and one-image reconstruction.

Token shards follow the data contract: one sample per image with ``tokens.npy`` (int16 when the codebook
fits, else int32; shape (h, w), or (10, h, w) with ``ten_crop``), ``cls`` when the source has labels and
``json`` (source id, crop).  The manifest names the tokenizer by family, token-space hash and checkpoint
sha256, so a decoder or AR model built for another tokenizer refuses the shards.  A killed job resumes
after the last whole shard: the source is read in a fixed order and the first ``num_done`` images are
skipped without decoding.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from vq_core import MANIFEST_NAME, Manifest, TokenizerInfo, file_sha256, progress
from vq_data import ShardSetWriter, iter_samples, key_output_path, open_image, open_manifest
from vq_data import ten_crop as ten_crop_views
from vq_tokenizers.base import Tokenizer, load_tokenizer
from vq_tokenizers.images import ImageRecord, ImageSource, center_crop
from vq_tokenizers.images_io import save_png

log = logging.getLogger(__name__)

TEN_CROP_CENTER = 4  # torchvision's ten_crop order: 4 corners, centre, then the mirrored five
INT16_MAX_CODEBOOK = 2**15
T = TypeVar("T")


def _batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def token_dtype(codebook_size: int) -> str:
    """The narrowest dtype of the data contract that holds every token id."""
    return "int16" if codebook_size <= INT16_MAX_CODEBOOK else "int32"


def _device(device: str | torch.device | None) -> torch.device:
    return torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")


def tokenizer_info(
    model: Tokenizer, checkpoint: str | os.PathLike[str], *, ten_crop: bool = False, image_size: int | None = None
) -> TokenizerInfo:
    """Identity of ``model`` (loaded from ``checkpoint``) as token-shard manifests record it, with the image
    size the images are tokenized at (default: the model's own) and the token grid that size gives."""
    size = image_size or model.image_size
    return TokenizerInfo(
        name=model.family,
        config_hash=model.token_space_hash(),
        checkpoint_sha256=file_sha256(checkpoint),
        codebook_size=model.codebook_size,
        grid=model.grid_for(size),
        dtype=token_dtype(model.codebook_size),
        image_size=size,
        checkpoint=str(Path(checkpoint).resolve()),
        ten_crop=ten_crop,
    )


def token_sample(record: ImageRecord, grid: np.ndarray, dtype: np.dtype, ten_crop: bool) -> dict[str, Any]:
    """One token-shard sample as the data contract defines it (shared with the Ray Data path)."""
    sample: dict[str, Any] = {
        "__key__": record.key,
        "tokens.npy": grid.astype(dtype),
        "json": {**(record.meta or {}), "crop": "ten_crop" if ten_crop else "center"},
    }
    if record.label is not None:
        sample["cls"] = record.label
    return sample


def tokenize_shards(
    tokenizer_ckpt: str | os.PathLike[str],
    image_source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    samples_per_shard: int = 256,
    ten_crop: bool = False,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    overwrite: bool = False,
    verify: bool = True,
    image_size: int | None = None,
) -> Manifest:
    """Tokenize every image of an image shard set or vq-data source (folder, list file, ImageNet root,
    ``bundled``) into token shards in ``out_dir``; resumes a partial run.  Image shards are checked
    against their manifest's sha256 as they stream (``verify=False`` skips that): a tampered label
    must not be carried into a freshly hashed token set.  ``image_size`` crops the images to another
    side than the model's own (a multiple of its patch size / downsampling factor: the seed tokenizes at
    256 px, 16x16 tokens, with a VQ-KD trained at 224); the manifest records that size and its grid."""
    from vq_tokenizers import __version__

    device = _device(device)
    model = load_tokenizer(tokenizer_ckpt, map_location=device)
    source = ImageSource(image_source, verify=verify)
    info = tokenizer_info(model, tokenizer_ckpt, ten_crop=ten_crop, image_size=image_size)
    dtype = np.dtype(info.dtype)
    with ShardSetWriter(
        out_dir,
        kind="tokens",
        dataset=source.dataset_info(),
        tokenizer=info,
        samples_per_shard=samples_per_shard,
        tool="vq-tok tokenize",
        tool_version=__version__,
        overwrite=overwrite,
    ) as writer:
        done = writer.num_done
        if done:
            log.info("%s: resuming after %d of %d images", out_dir, done, len(source))
        bar = progress(total=len(source), initial=done, desc="tokenize", unit="img")
        for batch in _batched(source.iter_records(start=done), batch_size):
            tokens = encode_records(model, batch, ten_crop=ten_crop, device=device, image_size=info.image_size)
            for record, grid in zip(batch, tokens):
                writer.write(token_sample(record, grid, dtype, ten_crop))
            bar.update(len(batch))
        bar.close()
    return writer.manifest


@torch.no_grad()
def encode_records(
    model: Tokenizer,
    records: list[ImageRecord],
    *,
    ten_crop: bool = False,
    device: torch.device | None = None,
    image_size: int | None = None,
) -> np.ndarray:
    """Token grids (N, h, w) - or (N, 10, h, w) with ten-crop - of decoded source images cropped to
    ``image_size`` (default: the model's own)."""
    size = image_size or model.image_size
    crops = [ten_crop_views(r.rgb(), size) if ten_crop else center_crop(r.rgb(), size) for r in records]
    pixels = (torch.cat if ten_crop else torch.stack)(crops).to(device or "cpu")
    tokens = model.encode(pixels).cpu().numpy()
    return tokens.reshape(len(records), 10, *tokens.shape[1:]) if ten_crop else tokens



@torch.no_grad()
def decode_shards(
    tokens_dir: str | os.PathLike[str],
    tokenizer_ckpt: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    verify: bool = True,
) -> list[Path]:
    """Decode token shards back to PNGs (``<out_dir>/<key>.png``); refuses tokens of another tokenizer.

    Keys come from shards someone else may have made: each output path must resolve inside
    ``out_dir`` (no absolute or ``..`` keys, no symbolic link leading out), and shards are checked
    against their manifest while they stream unless ``verify=False``.
    """
    device = _device(device)
    model = load_tokenizer(tokenizer_ckpt, map_location=device)
    manifest = open_manifest(tokens_dir)
    manifest.check_tokenizer(
        codebook_size=model.codebook_size,
        config_hash=model.token_space_hash(),
        grid=model.grid_for(manifest.tokenizer.image_size or model.image_size),
        where=f"tokenizer {tokenizer_ckpt}",
        manifest=Path(tokens_dir) / MANIFEST_NAME,
    )
    if not model.can_decode:
        model.decode(torch.zeros(0))  # raises the family's "no pixel decoder" message
    out_dir = Path(out_dir)
    written: list[Path] = []
    samples = iter_samples(tokens_dir, manifest=manifest, verify=verify, limit=limit)
    for batch in _batched(samples, batch_size):
        grids = [s["tokens.npy"][TEN_CROP_CENTER] if manifest.tokenizer.ten_crop else s["tokens.npy"] for s in batch]
        images = model.decode(torch.from_numpy(np.stack(grids).astype(np.int64)).to(device))
        for sample, image in zip(batch, images):
            path = key_output_path(out_dir, sample["__key__"], ".png")
            save_png(image, path)
            written.append(path)
    return written


@torch.no_grad()
def reconstruct_image(
    image: str | os.PathLike[str],
    tokenizer_ckpt: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    device: str | torch.device | None = None,
) -> dict[str, float]:
    """One image -> tokens -> image, saved side by side (input | reconstruction); returns PSNR and usage."""
    device = _device(device)
    model = load_tokenizer(tokenizer_ckpt, map_location=device)
    path = Path(image)
    if not path.is_file():
        raise FileNotFoundError(f"image {path} does not exist")
    pixels = center_crop(open_image(path), model.image_size).unsqueeze(0).to(device)
    tokens = model.encode(pixels)
    recon = model.decode(tokens).clamp(-1, 1)
    save_png(torch.cat([pixels, recon.float()], dim=-1)[0], out)
    mse = float(((pixels - recon) / 2).pow(2).mean())  # on the [0, 1] scale
    return {
        "psnr": float(10 * np.log10(1.0 / max(mse, 1e-12))),
        "unique_tokens": float(tokens.unique().numel()),
        "tokens": float(tokens.numel()),
    }
