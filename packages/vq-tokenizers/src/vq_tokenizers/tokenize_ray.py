"""Images -> token shards on a Ray Data actor pool, with the same files as :func:`~vq_tokenizers.tokenize.tokenize_shards`.

The work unit is one *output shard*: shard ``k`` holds source samples ``[k * n, (k + 1) * n)`` in source
order, exactly as the single-process writer fills it.  A pool of ``num_workers`` actors (each loads the
tokenizer once, on a GPU when asked) maps over the shard indices; an actor encodes its samples, writes
them with vq-data's :class:`~vq_data.ShardSetWriter` into a private temporary directory and renames
the finished tar to ``shard-<k>.tar`` in the output directory (a shared filesystem on a cluster).  The
driver records finished shards in the manifest in index order only, so a partial manifest always
describes a whole prefix of shards: a killed job resumes (with this function or the single-process
one) after the last recorded shard, and the unrecorded shards it leaves are deleted as strays.

The shards are byte-identical to the single-process path when ``samples_per_shard`` is a multiple of
``batch_size`` (then both encode the same batches; other batch splits can change float rounding).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from vq_core import DatasetInfo, Manifest, ShardEntry, TokenizerInfo, progress
from vq_data import ShardSetWriter
from vq_tokenizers.base import load_tokenizer
from vq_tokenizers.images import ImageSource
from vq_tokenizers.tokenize import _batched, encode_records, token_sample, tokenizer_info

log = logging.getLogger(__name__)

TOOL = "vq-tok tokenize"  # the single-process tool name: the manifests must not differ
SHARD_PREFIX = "shard"


class ShardTokenizer:
    """Ray Data actor: tokenizer loaded once; ``__call__`` turns a batch of shard indices into shard files."""

    def __init__(
        self,
        tokenizer_ckpt: str,
        image_source: str,
        out_dir: str,
        *,
        samples_per_shard: int,
        ten_crop: bool,
        batch_size: int,
        dataset: dict[str, Any],
        tokenizer: dict[str, Any],
        tool_version: str,
        device: str,
        verify: bool = True,
    ) -> None:
        import torch

        self.device = torch.device(device)
        self.model = load_tokenizer(tokenizer_ckpt, map_location=self.device)
        self.source = ImageSource(image_source, verify=verify)
        self.out_dir = Path(out_dir)
        self.samples_per_shard = samples_per_shard
        self.ten_crop = ten_crop
        self.batch_size = batch_size
        self.dataset = DatasetInfo.model_validate(dataset)
        self.tokenizer = TokenizerInfo.model_validate(tokenizer)
        self.dtype = np.dtype(self.tokenizer.dtype)
        self.tool_version = tool_version

    def write_shard(self, index: int) -> ShardEntry:
        """Encode shard ``index``'s samples and move the finished tar to ``shard-<index>.tar``."""
        first = index * self.samples_per_shard
        records = islice(self.source.iter_records(start=first), self.samples_per_shard)
        scratch = self.out_dir / f".ray-{SHARD_PREFIX}-{index:06d}"
        shutil.rmtree(scratch, ignore_errors=True)
        with ShardSetWriter(
            scratch, kind="tokens", dataset=self.dataset, tokenizer=self.tokenizer, samples_per_shard=self.samples_per_shard,
            tool=TOOL, tool_version=self.tool_version,
        ) as writer:
            for batch in _batched(records, self.batch_size):
                grids = encode_records(
                    self.model, batch, ten_crop=self.ten_crop, device=self.device, image_size=self.tokenizer.image_size
                )
                for record, grid in zip(batch, grids):
                    writer.write(token_sample(record, grid, self.dtype, self.ten_crop))
        (written,) = writer.manifest.shards
        name = f"{SHARD_PREFIX}-{index:06d}.tar"
        os.replace(scratch / written.name, self.out_dir / name)
        shutil.rmtree(scratch)
        return written.model_copy(update={"name": name})

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        entries = [self.write_shard(int(index)) for index in batch["shard"]]
        return {
            "shard": [int(i) for i in batch["shard"]],
            "entry": [entry.model_dump_json() for entry in entries],
        }


def tokenize_shards_ray(
    tokenizer_ckpt: str | os.PathLike[str],
    image_source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    samples_per_shard: int = 256,
    ten_crop: bool = False,
    batch_size: int = 32,
    ray_address: str | None = "local",
    num_workers: int = 2,
    use_gpu: bool = False,
    overwrite: bool = False,
    verify: bool = True,
    image_size: int | None = None,
) -> Manifest:
    """Tokenize every image of ``image_source`` into token shards in ``out_dir`` with ``num_workers`` Ray actors.

    ``ray_address`` is ``"local"`` (start Ray here), ``"auto"`` or a cluster address; it is ignored when
    Ray is already initialised.  Resumes a partial run; returns the complete manifest.  ``verify`` as in
    :func:`~vq_tokenizers.tokenize.tokenize_shards` (each actor checks the image shards it reads), and so is
    ``image_size`` (the side images are cropped to; the manifest records it and its grid).
    """
    import ray

    from vq_tokenizers import __version__

    out = Path(out_dir)
    model = load_tokenizer(tokenizer_ckpt, map_location="cpu")
    info = tokenizer_info(model, tokenizer_ckpt, ten_crop=ten_crop, image_size=image_size)
    source = ImageSource(image_source, verify=verify)
    dataset = source.dataset_info()
    # Opening the writer checks a partial run's settings and shards, deletes the unrecorded ones it numbered
    # and refuses shards of anyone else; it is never closed here (closing would mark the set complete).
    manifest = ShardSetWriter(
        out, kind="tokens", dataset=dataset, tokenizer=info, samples_per_shard=samples_per_shard, tool=TOOL,
        tool_version=__version__, overwrite=overwrite,
    ).manifest
    if manifest.complete:
        log.info("%s is already complete (%d samples)", out, manifest.num_samples)
        return manifest
    for stale in out.glob(f".ray-{SHARD_PREFIX}-*"):
        shutil.rmtree(stale)
    total = math.ceil(len(source) / samples_per_shard)
    todo = list(range(len(manifest.shards), total))
    if manifest.shards:
        log.info("%s: resuming after %d of %d shards", out, len(manifest.shards), total)
    if todo:
        if not ray.is_initialized():
            ray.init(address=None if ray_address == "local" else ray_address, include_dashboard=False, log_to_driver=False)
        pool = ray.data.from_items([{"shard": k} for k in todo]).map_batches(
            ShardTokenizer,
            fn_constructor_kwargs={
                "tokenizer_ckpt": str(Path(tokenizer_ckpt).resolve()),
                "image_source": str(image_source) if str(image_source) == "bundled" else str(Path(image_source).resolve()),
                "out_dir": str(out.resolve()),
                "samples_per_shard": samples_per_shard,
                "ten_crop": ten_crop,
                "batch_size": batch_size,
                "dataset": dataset.model_dump(mode="json"),
                "tokenizer": info.model_dump(mode="json"),
                "tool_version": __version__,
                "device": "cuda" if use_gpu else "cpu",
                "verify": verify,
            },
            batch_size=1,
            concurrency=num_workers,
            num_gpus=1 if use_gpu else 0,
        )
        finished: dict[int, ShardEntry] = {}
        bar = progress(total=total, initial=len(manifest.shards), desc="tokenize (ray)", unit="shard")
        for row in pool.iter_rows():
            finished[int(row["shard"])] = ShardEntry.model_validate_json(row["entry"])
            bar.update(1)
            before = len(manifest.shards)
            while len(manifest.shards) in finished:  # record shards in order only: the manifest stays a whole prefix
                manifest = manifest.model_copy(update={"shards": [*manifest.shards, finished.pop(len(manifest.shards))]})
            if len(manifest.shards) > before:
                manifest.save(out)
        bar.close()
    manifest = manifest.model_copy(update={"complete": True})
    manifest.save(out)
    return manifest
