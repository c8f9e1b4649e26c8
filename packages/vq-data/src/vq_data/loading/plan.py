"""Which samples a rank/worker reads in an epoch, and in what order: pure index arithmetic.

An epoch is a *stream*: the shards in an order shuffled by ``(seed, epoch)``, each read front to back.
Positions ``>= num_samples`` wrap around to the stream's start (used for padding).

* Ranks get contiguous, equal spans of the stream, split at the sample level (not the shard level), so
  uneven shards can never give ranks different batch counts and hang a collective.  ``uneven="drop"``
  gives each rank ``N // world`` samples (at most ``world - 1`` samples unseen per epoch, a different
  few each epoch since the shard order changes); ``uneven="pad"`` gives ``ceil(N / world)`` by wrapping
  around (at most ``world - 1`` samples seen twice), for evaluation that must see every sample.
* A rank's span is cut into whole batches; DataLoader workers get contiguous runs of batches, so only
  the rank's final batch can be short.  The DataLoader hands batches out round-robin over workers
  (skipping finished ones), which fixes the delivery order and lets a resume compute how many
  batches each worker had delivered.
* Within a worker, samples are reordered by a bounded shuffle buffer (webdataset-style), seeded by
  ``(seed, epoch, rank, worker)``; it is computed on indices, so skipping delivered samples on resume
  needs no decoding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Uneven = Literal["drop", "pad"]


def shard_order(num_shards: int, *, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Shard indices in the epoch's reading order (a permutation seeded by ``(seed, epoch)``)."""
    if not shuffle:
        return np.arange(num_shards)
    return np.random.default_rng([seed, epoch, 0x5A4D]).permutation(num_shards)


def rank_span(num_samples: int, rank: int, world_size: int, uneven: Uneven) -> tuple[int, int]:
    """(first stream position, sample count) of ``rank``; every rank gets the same count."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    if uneven == "drop":
        count = num_samples // world_size
        if count == 0:
            raise ValueError(
                f"the shard set has {num_samples} samples, fewer than world_size {world_size}; use uneven='pad'"
            )
    elif uneven == "pad":
        count = math.ceil(num_samples / world_size)
    else:
        raise ValueError(f"uneven must be 'drop' or 'pad', got {uneven!r}")
    return rank * count, count


def num_batches(count: int, batch_size: int, drop_last: bool) -> int:
    return count // batch_size if drop_last else math.ceil(count / batch_size)


def worker_spans(count: int, batch_size: int, num_workers: int, drop_last: bool) -> list[tuple[int, int, int]]:
    """Per worker: (offset in the rank span, sample count, batch count); contiguous runs of whole batches."""
    batches = num_batches(count, batch_size, drop_last)
    usable = min(count, batches * batch_size)
    spans = []
    for worker in range(num_workers):
        first, last = worker * batches // num_workers, (worker + 1) * batches // num_workers
        lo, hi = first * batch_size, min(last * batch_size, usable)
        spans.append((lo, max(hi - lo, 0), last - first))
    return spans


def buffer_shuffle(count: int, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """The output order of a shuffle buffer of ``buffer_size`` fed ``0..count-1``.

    Each step adds the next index and, once the buffer is full, emits a uniformly chosen element, so an
    element is emitted at most ``buffer_size - 1`` places before it is read: memory stays bounded.
    """
    if buffer_size <= 1 or count <= 1:
        return np.arange(count)
    choices = rng.random(count)
    out = np.empty(count, dtype=np.int64)
    buffer: list[int] = []
    emitted = 0
    for index in range(count):
        buffer.append(index)
        if len(buffer) >= buffer_size:
            out[emitted] = _pop_at(buffer, int(choices[emitted] * len(buffer)))
            emitted += 1
    while buffer:
        out[emitted] = _pop_at(buffer, int(choices[emitted] * len(buffer)))
        emitted += 1
    return out


def _pop_at(buffer: list[int], slot: int) -> int:
    buffer[slot], buffer[-1] = buffer[-1], buffer[slot]
    return buffer.pop()


def delivered_per_worker(batches_per_worker: list[int], delivered: int) -> tuple[list[int], int]:
    """Round-robin (finished workers skipped) after ``delivered`` batches: batches per worker, and the
    worker whose turn is next."""
    if delivered > sum(batches_per_worker):
        raise ValueError(f"{delivered} batches delivered but the epoch has only {sum(batches_per_worker)}")
    done = [0] * len(batches_per_worker)
    left, last = delivered, -1
    while left:
        for worker, total in enumerate(batches_per_worker):
            if left and done[worker] < total:
                done[worker] += 1
                left -= 1
                last = worker
    return done, (last + 1) % len(batches_per_worker)


@dataclass(frozen=True)
class WorkerPlan:
    """What one worker of one rank reads in one epoch."""

    shard_order: np.ndarray
    start: int
    """Stream position of the worker's first sample."""
    order: np.ndarray
    """Offsets (from ``start``) still to deliver, in delivery order."""
    batches: int
    """Batches of this worker in the whole epoch."""


def worker_plan(
    shard_counts: list[int],
    *,
    seed: int,
    epoch: int,
    shuffle: bool,
    shuffle_buffer: int,
    rank: int,
    world_size: int,
    uneven: Uneven,
    batch_size: int,
    drop_last: bool,
    worker: int,
    num_workers: int,
    batches_delivered: int,
) -> WorkerPlan:
    """The plan of DataLoader worker ``worker`` after the rank delivered ``batches_delivered`` batches this epoch.

    A new DataLoader starts its round-robin at worker 0, so on resume the workers' roles are rotated:
    worker 0 takes the role whose turn was next, and the delivery order continues unchanged.
    """
    num_samples = sum(shard_counts)
    rank_start, rank_count = rank_span(num_samples, rank, world_size, uneven)
    spans = worker_spans(rank_count, batch_size, num_workers, drop_last)
    done_per_worker, turn = delivered_per_worker([s[2] for s in spans], batches_delivered)
    worker = (worker + turn) % num_workers
    offset, count, _ = spans[worker]
    done = done_per_worker[worker]
    if shuffle:
        order = buffer_shuffle(count, shuffle_buffer, np.random.default_rng([seed, epoch, rank, worker]))
    else:
        order = np.arange(count)
    return WorkerPlan(
        shard_order=shard_order(len(shard_counts), seed=seed, epoch=epoch, shuffle=shuffle),
        start=rank_start + offset,
        order=order[min(done * batch_size, count) :],
        batches=spans[worker][2],
    )


def samples_delivered(
    num_samples: int, *, rank: int, world_size: int, uneven: Uneven, batch_size: int, drop_last: bool,
    num_workers: int, batches_delivered: int,
) -> int:
    """Samples in the first ``batches_delivered`` batches of a rank's epoch."""
    _, rank_count = rank_span(num_samples, rank, world_size, uneven)
    spans = worker_spans(rank_count, batch_size, num_workers, drop_last)
    done, _ = delivered_per_worker([s[2] for s in spans], batches_delivered)
    return sum(min(d * batch_size, s[1]) for d, s in zip(done, spans))
