"""A resumable, rank- and worker-aware IterableDataset over an image or token shard set.

The dataset yields whole batches (collated inside the worker), so its position in an epoch is a
batch count.  That count, with the epoch, is the whole resume state: every rank and worker can
recompute from it which samples it has still to deliver (see :mod:`vq_data.loading.plan`).
Augmentation randomness comes from a generator seeded by ``(seed, epoch, stream position)`` of each
sample, so it does not depend on the number of workers or on timing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from vq_core import Manifest, ManifestError
from vq_data.imageio import decode_image
from vq_data.loading.distributed import resolve_rank
from vq_data.loading.plan import Uneven, num_batches, rank_span, samples_delivered, worker_plan
from vq_data.loading.stream import iter_stream
from vq_data.shards import SampleError, open_manifest
from vq_data.shards.codec import IMAGE_EXTENSIONS

Transform = Callable[[Image.Image, torch.Generator], torch.Tensor]
Decoder = Callable[[dict[str, Any], torch.Generator, str], tuple[torch.Tensor, int, str]]
NO_LABEL = -1
_STATE_CHECKED = ("batch_size", "world_size", "seed", "num_samples", "shuffle", "uneven", "drop_last")
# How a user sets each checked loader setting, so a refused resume names the flag, not the field.
_SETTING_NAMES = {
    "batch_size": "--batch-size",
    "world_size": "--num-workers (training ranks)",
    "seed": "--seed",
    "num_samples": "the data (sample count)",
}


class ImageDecoder:
    """Stored image bytes -> ``transform(image, generator)``; label ``-1`` when the sample has no ``cls``."""

    def __init__(self, transform: Transform) -> None:
        self.transform = transform

    def __call__(self, sample: dict[str, Any], generator: torch.Generator, where: str) -> tuple[torch.Tensor, int, str]:
        field = next((f for f in IMAGE_EXTENSIONS if f in sample), None)
        if field is None:
            raise SampleError(f"{where}: sample has no image field ({', '.join(IMAGE_EXTENSIONS)}); fields: {sorted(sample)}")
        image = decode_image(sample[field], where=where)
        return self.transform(image, generator), int(sample.get("cls", NO_LABEL)), sample["__key__"]


class TokenDecoder:
    """``tokens.npy`` -> int64 tokens of one view: (h*w,) when ``flatten`` else the grid shape.

    Samples may hold several views (e.g. ten crops: (10, h, w)); ``variant="random"`` draws one per
    visit from the sample's generator (LlamaGen's augmentation for ten-crop codes), an int picks it.
    """

    def __init__(self, grid: Sequence[int], *, variant: int | Literal["random"] = "random", flatten: bool = True) -> None:
        self.grid = tuple(int(g) for g in grid)
        self.size = int(np.prod(self.grid))
        self.variant = variant
        self.flatten = flatten

    def __call__(self, sample: dict[str, Any], generator: torch.Generator, where: str) -> tuple[torch.Tensor, int, str]:
        if "tokens.npy" not in sample:
            raise SampleError(f"{where}: sample has no 'tokens.npy' (fields: {sorted(sample)})")
        array = np.asarray(sample["tokens.npy"])
        if array.size == 0 or array.size % self.size:
            raise SampleError(f"{where}: tokens of shape {array.shape} do not fit the manifest grid {self.grid}")
        views = array.reshape(-1, self.size)
        if self.variant == "random":
            index = int(torch.randint(0, len(views), (1,), generator=generator))
        elif 0 <= self.variant < len(views):
            index = self.variant
        else:
            raise SampleError(f"{where}: token variant {self.variant} requested but the sample holds {len(views)}")
        tokens = torch.from_numpy(views[index].astype(np.int64))
        return (tokens if self.flatten else tokens.view(self.grid)), int(sample.get("cls", NO_LABEL)), sample["__key__"]


def sample_generator(seed: int, epoch: int, position: int) -> torch.Generator:
    """The generator of one sample visit: a function of (seed, epoch, stream position) only."""
    state = np.random.SeedSequence([seed, epoch, position]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


class ShardDataset(IterableDataset):
    """Batches (``(x, labels)`` or ``(x, labels, keys)``) of one rank's share of a shard set.

    Every rank gets the same number of batches per epoch (see ``uneven``); the order is a function
    of ``(seed, epoch)``.  Each shard a worker touches is verified against the manifest's sha256 while
    it streams (``verify=False`` skips that; see :mod:`vq_data.loading.stream`).  ``state_dict()`` holds the epoch and how many batches/samples this rank
    has delivered; a dataset given that state yields exactly the rest of the epoch.  Counting
    happens where batches reach the training process: in :meth:`__iter__` when it runs in that
    process, or in :class:`~vq_data.loading.loader.ShardLoader` when DataLoader workers run it.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        decoder: Decoder,
        *,
        batch_size: int,
        kind: Literal["images", "tokens"] | None = None,
        seed: int = 0,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        rank: int | None = None,
        world_size: int | None = None,
        uneven: Uneven = "drop",
        drop_last: bool = False,
        return_keys: bool = False,
        manifest: Manifest | None = None,
        verify: bool = True,
    ) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.manifest = manifest or open_manifest(self.directory)
        if kind is not None and self.manifest.kind != kind:
            raise ManifestError(f"{self.directory} holds {self.manifest.kind!r} shards; this loader reads {kind!r} shards")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {batch_size}")
        self.decoder = decoder
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.rank, self.world_size = resolve_rank(rank, world_size)
        self.uneven: Uneven = uneven
        self.drop_last = drop_last
        self.return_keys = return_keys
        self.verify = verify
        self.shard_counts = [entry.num_samples for entry in self.manifest.shards]
        if self.num_samples == 0:
            raise ManifestError(f"{self.directory}: the shard set holds no samples")
        _, self.samples_per_rank = rank_span(self.num_samples, self.rank, self.world_size, uneven)
        if len(self) == 0:
            raise ValueError(
                f"--batch-size {batch_size} exceeds the {self.samples_per_rank} samples per rank of {self.directory} "
                f"(incomplete batches are dropped); use --batch-size {self.samples_per_rank} or less"
            )
        self.epoch = 0
        self.batches_delivered = 0
        self._layout_workers = 1

    @property
    def num_samples(self) -> int:
        return sum(self.shard_counts)

    def __len__(self) -> int:
        """Batches per epoch for this rank (the same on every rank)."""
        return num_batches(self.samples_per_rank, self.batch_size, self.drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning; setting the current epoch keeps a resumed position."""
        if epoch != self.epoch:
            self.epoch, self.batches_delivered = epoch, 0

    def advance(self, batches: int = 1, *, num_workers: int = 1) -> None:
        """Record ``batches`` as handed to the training loop (by ``num_workers`` DataLoader workers)."""
        if self.batches_delivered == 0:
            self._layout_workers = max(num_workers, 1)
        self.batches_delivered += batches
        if self.batches_delivered >= len(self):
            self.epoch, self.batches_delivered = self.epoch + 1, 0

    @property
    def samples_consumed(self) -> int:
        return samples_delivered(
            self.num_samples, rank=self.rank, world_size=self.world_size, uneven=self.uneven,
            batch_size=self.batch_size, drop_last=self.drop_last, num_workers=self._layout_workers,
            batches_delivered=self.batches_delivered,
        )

    def state_dict(self) -> dict[str, Any]:
        """Epoch and position, plus the settings a mid-epoch resume must share."""
        return {
            "epoch": self.epoch,
            "batches_delivered": self.batches_delivered,
            "samples_consumed": self.samples_consumed,
            "num_workers": self._layout_workers,
            "batch_size": self.batch_size,
            "world_size": self.world_size,
            "seed": self.seed,
            "num_samples": self.num_samples,
            "shuffle": self.shuffle,
            "uneven": self.uneven,
            "drop_last": self.drop_last,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; mid-epoch this needs the same batch size, world size, seed and data."""
        delivered = int(state.get("batches_delivered", 0))
        if delivered:
            mine = self.state_dict()
            wrong = [
                f"{_SETTING_NAMES.get(k, k)} was {state.get(k)!r}, now {mine[k]!r}"
                for k in _STATE_CHECKED
                if state.get(k) != mine[k]
            ]
            if wrong:
                raise ValueError(
                    f"cannot resume mid-epoch from the saved position in {self.directory}: " + "; ".join(wrong)
                    + "; resume with the saved values, or start a new run in another --out"
                )
        self.epoch = int(state["epoch"])
        self.batches_delivered = delivered
        self._layout_workers = int(state.get("num_workers", 1)) if delivered else 1
        if delivered and self.samples_consumed != state.get("samples_consumed", self.samples_consumed):
            raise ValueError(
                f"saved samples_consumed {state['samples_consumed']} does not match {delivered} batches "
                f"({self.samples_consumed} samples); the state does not belong to this data"
            )

    def _collate(self, items: list[tuple[torch.Tensor, int, str]]) -> tuple[Any, ...]:
        x = torch.stack([item[0] for item in items])
        labels = torch.tensor([item[1] for item in items], dtype=torch.long)
        return (x, labels, [item[2] for item in items]) if self.return_keys else (x, labels)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if self.batches_delivered and workers != self._layout_workers:
            raise RuntimeError(
                f"resuming mid-epoch with {workers} loader workers, but the state was saved with "
                f"{self._layout_workers}; use num_workers={self._layout_workers}"
            )
        epoch = self.epoch
        plan = worker_plan(
            self.shard_counts, seed=self.seed, epoch=epoch, shuffle=self.shuffle, shuffle_buffer=self.shuffle_buffer,
            rank=self.rank, world_size=self.world_size, uneven=self.uneven, batch_size=self.batch_size,
            drop_last=self.drop_last, worker=worker, num_workers=workers, batches_delivered=self.batches_delivered,
        )
        count_here = info is None
        batch: list[tuple[torch.Tensor, int, str]] = []
        ready: tuple[Any, ...] | None = None
        # A full batch waits for the next sample (or the stream's end): by then every shard it came from has
        # been read to its end and verified, so even a consumer that stops after its last batch sees a mismatch.
        for position, sample, path in self._ordered(plan.shard_order, plan.start, plan.order):
            if ready is not None:
                yield self._deliver(ready, count_here)
                ready = None
            where = f"{path}:{sample['__key__']}"
            batch.append(self.decoder(sample, sample_generator(self.seed, epoch, position), where))
            if len(batch) == self.batch_size:
                ready, batch = self._collate(batch), []
        if ready is not None:
            yield self._deliver(ready, count_here)
        if batch:
            yield self._deliver(self._collate(batch), count_here)

    def _deliver(self, batch: tuple[Any, ...], count_here: bool) -> tuple[Any, ...]:
        if count_here:
            self.advance(1)
        return batch

    def _ordered(
        self, shard_order: np.ndarray, start: int, order: np.ndarray
    ) -> Iterator[tuple[int, dict[str, Any], Path]]:
        """Samples at ``start + order[i]`` in the order of ``order``, read sequentially with bounded look-ahead."""
        if len(order) == 0:
            return
        wanted = set(order.tolist())
        targets = iter(order.tolist())
        target = next(targets)
        pending: dict[int, tuple[int, dict[str, Any], Path]] = {}
        stream = iter_stream(
            self.directory, self.manifest, shard_order, start + min(wanted), start + max(wanted) + 1, verify=self.verify
        )
        for position, sample, path in stream:
            offset = position - start
            if offset not in wanted:
                continue
            pending[offset] = (position, sample, path)
            while target in pending:
                yield pending.pop(target)
                target = next(targets, -1)
