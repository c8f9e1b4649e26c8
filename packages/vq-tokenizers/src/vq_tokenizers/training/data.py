"""An endless, deterministic, rank-sharded stream of training batches that can restart at any batch.

Works on any :class:`~vq_tokenizers.images.ImageSource` (image folders included; vq-data's
``image_loader`` with worker processes is the faster choice for big shard sets).  Each epoch shuffles the
order of the source's chunks and the samples inside each chunk with generators seeded by
``(seed, epoch, chunk)``; rank ``r`` of ``w`` takes chunks ``r, r+w, ...`` (or, when there are fewer chunks
than ranks, every ``w``-th sample).  vq-data's train transform (random-resized crop + flip) draws from a
generator seeded by ``(seed, epoch, sample index)``, so ``iter_from(n)`` yields exactly what an
uninterrupted stream would have yielded after ``n`` batches: a resumed run sees the same data.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from vq_data import TrainTransform, sample_generator
from vq_tokenizers.images import ImageRecord, ImageSource


class ImageBatches:
    def __init__(
        self,
        source: ImageSource | str | os.PathLike[str],
        *,
        image_size: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        flip: bool = True,
        scale: tuple[float, float] | None = None,
    ) -> None:
        """``scale``: the random-resized crop's area range (None: vq-data's default)."""
        self.source = source if isinstance(source, ImageSource) else ImageSource(source)
        self.image_size = image_size
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.transform = TrainTransform(image_size, flip=flip) if scale is None else TrainTransform(image_size, flip=flip, scale=scale)
        self._split_chunks = len(self.source.chunk_sizes) >= world_size
        if self._epoch_size(0) == 0:
            raise ValueError(f"{self.source.path}: rank {rank} of {world_size} gets no images")

    def _chunks(self, epoch: int) -> list[int]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.source.chunk_sizes)).tolist()
        return order[self.rank :: self.world_size] if self._split_chunks else order

    def _epoch_size(self, epoch: int) -> int:
        if self._split_chunks:
            return sum(self.source.chunk_sizes[c] for c in self._chunks(epoch))
        total = len(self.source)
        return total // self.world_size + (self.rank < total % self.world_size)

    def _epoch(self, epoch: int, skip: int) -> Iterator[tuple[ImageRecord, torch.Generator]]:
        """This rank's samples of one epoch in order, after skipping ``skip`` of them."""
        position = 0  # index within the epoch's full (all-rank) sequence, for the sample-split mode
        offsets = np.concatenate([[0], np.cumsum(self.source.chunk_sizes)]).tolist()  # source index of each chunk
        for chunk in self._chunks(epoch):
            size = self.source.chunk_sizes[chunk]
            mine = size if self._split_chunks else len(range((self.rank - position) % self.world_size, size, self.world_size))
            if skip >= mine:
                skip -= mine
                position += size
                continue
            records = self.source.read_chunk(chunk)
            order = np.random.default_rng([self.seed, epoch, chunk]).permutation(size)
            for i, index in enumerate(order):
                if not self._split_chunks and (position + i) % self.world_size != self.rank:
                    continue
                if skip:
                    skip -= 1
                    continue
                yield records[index], sample_generator(self.seed, epoch, offsets[chunk] + int(index))
            position += size

    def iter_from(self, batch_index: int) -> Iterator[torch.Tensor]:
        """Batches (B, 3, S, S) in [-1, 1], starting with batch number ``batch_index``."""
        skip, epoch = batch_index * self.batch_size, 0
        while skip >= self._epoch_size(epoch):
            skip -= self._epoch_size(epoch)
            epoch += 1
        batch: list[torch.Tensor] = []
        while True:
            for record, rng in self._epoch(epoch, skip):
                batch.append(self.transform(record.rgb(), rng))
                if len(batch) == self.batch_size:
                    yield torch.stack(batch)
                    batch = []
            skip, epoch = 0, epoch + 1

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.iter_from(0)
