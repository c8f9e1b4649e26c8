"""DataLoaders over shard sets: images for tokenizer training/eval, tokens for AR training.

:class:`ShardLoader` is a ``torch.utils.data.DataLoader`` around a :class:`ShardDataset` that keeps
the resume bookkeeping in the training process: it counts the batches it hands out, so
``state_dict()`` is exact even with worker processes prefetching ahead.  Workers are started per
epoch (no persistent workers) so each epoch's iterator carries the current epoch and position.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any, Literal

from torch.utils.data import DataLoader

from vq_data.loading.dataset import ImageDecoder, ShardDataset, TokenDecoder, Transform
from vq_data.loading.plan import Uneven
from vq_data.shards import open_manifest
from vq_data.transforms import DEFAULT_TRAIN_RATIO, DEFAULT_TRAIN_SCALE, EvalTransform, TrainTransform


class ShardLoader(DataLoader):
    """A DataLoader of a :class:`ShardDataset` with ``state_dict``/``load_state_dict``/``set_epoch``.

    Each ``iter(loader)`` yields the rest of the current epoch; after the last batch the epoch
    advances.  A loop that stops early and iterates again continues where it stopped.
    """

    dataset: ShardDataset

    def __init__(self, dataset: ShardDataset, *, num_workers: int = 0, pin_memory: bool = False, **kwargs: Any) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError("ShardLoader starts workers per epoch so they see the current epoch; drop persistent_workers")
        super().__init__(dataset, batch_size=None, num_workers=num_workers, pin_memory=pin_memory, **kwargs)

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        if self.num_workers == 0:
            return batches  # the dataset runs in this process and counts its own batches
        return self._counted(batches)

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self.dataset.advance(1, num_workers=self.num_workers)
            yield batch

    @property
    def epoch(self) -> int:
        return self.dataset.epoch

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def state_dict(self) -> dict[str, Any]:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.dataset.load_state_dict(state)


def image_loader(
    directory: str | os.PathLike[str],
    batch_size: int,
    image_size: int,
    train: bool,
    *,
    seed: int = 0,
    shuffle: bool | None = None,
    shuffle_buffer: int = 1000,
    num_workers: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    uneven: Uneven | None = None,
    drop_last: bool | None = None,
    scale: Sequence[float] = DEFAULT_TRAIN_SCALE,
    ratio: Sequence[float] = DEFAULT_TRAIN_RATIO,
    flip: bool = True,
    transform: Transform | None = None,
    return_keys: bool = False,
    pin_memory: bool = False,
    verify: bool = True,
) -> ShardLoader:
    """Batches ``(images (B, 3, S, S) float in [-1, 1], labels (B,) long)`` of an image shard set.

    ``train=True``: random-resized-crop + flip, shuffled, ``uneven="drop"``, ``drop_last=True``.
    ``train=False``: resize + centre crop, stored order, ``uneven="pad"`` (every sample seen; with
    several ranks up to ``world_size - 1`` are seen twice; pass ``return_keys=True`` to dedupe),
    ``drop_last=False``.  Any default can be overridden; ``transform(image, generator)`` replaces the
    built-in one (e.g. :class:`~vq_data.transforms.TenCropTransform`).  Shards are checked against the
    manifest's sha256 as they stream unless ``verify=False``.
    """
    if transform is None:
        transform = TrainTransform(image_size, scale=scale, ratio=ratio, flip=flip) if train else EvalTransform(image_size)
    dataset = ShardDataset(
        directory,
        ImageDecoder(transform),
        batch_size=batch_size,
        kind="images",
        seed=seed,
        shuffle=train if shuffle is None else shuffle,
        shuffle_buffer=shuffle_buffer,
        rank=rank,
        world_size=world_size,
        uneven=uneven or ("drop" if train else "pad"),
        drop_last=train if drop_last is None else drop_last,
        return_keys=return_keys,
        verify=verify,
    )
    return ShardLoader(dataset, num_workers=num_workers, pin_memory=pin_memory)


def token_loader(
    directory: str | os.PathLike[str],
    batch_size: int,
    *,
    seed: int = 0,
    shuffle: bool = True,
    shuffle_buffer: int = 10000,
    num_workers: int = 0,
    rank: int | None = None,
    world_size: int | None = None,
    uneven: Uneven = "drop",
    drop_last: bool = False,
    flatten: bool = True,
    variant: int | Literal["random"] = "random",
    codebook_size: int | None = None,
    tokenizer_name: str | None = None,
    config_hash: str | None = None,
    return_keys: bool = False,
    pin_memory: bool = False,
    verify: bool = True,
) -> ShardLoader:
    """Batches ``(tokens long (B, h*w) or (B, h, w), labels (B,) long)`` of a token shard set.

    Passing ``codebook_size`` (and optionally ``tokenizer_name``/``config_hash``) makes the loader
    refuse shards of another tokenizer, via ``Manifest.check_tokenizer``.  Samples holding several
    views (ten-crop) give one per visit: a seeded random one, or the view index ``variant``.
    """
    manifest = open_manifest(directory)
    if codebook_size is not None:
        manifest.check_tokenizer(codebook_size=codebook_size, name=tokenizer_name, config_hash=config_hash, where="token_loader")
    grid = manifest.tokenizer.grid if manifest.tokenizer is not None else ()
    dataset = ShardDataset(
        directory,
        TokenDecoder(grid, variant=variant, flatten=flatten),
        batch_size=batch_size,
        kind="tokens",
        seed=seed,
        shuffle=shuffle,
        shuffle_buffer=shuffle_buffer,
        rank=rank,
        world_size=world_size,
        uneven=uneven,
        drop_last=drop_last,
        return_keys=return_keys,
        manifest=manifest,
        verify=verify,
    )
    return ShardLoader(dataset, num_workers=num_workers, pin_memory=pin_memory)
