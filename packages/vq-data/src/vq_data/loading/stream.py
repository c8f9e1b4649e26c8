"""Reading a run of epoch-stream positions from a shard set, opening only the shards it touches.

A touched shard is always read from its start; with ``verify`` it is also read to its end (the samples
after the run are parsed, not decoded), so its sha256 is checked even when a rank, worker or resumed
run needs only part of it.  Shards wholly outside the run are not opened, hence not verified by it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vq_core import Manifest
from vq_data.shards import iter_shard, shard_path


def iter_stream(
    directory: Path, manifest: Manifest, order: Sequence[int], start: int, stop: int, *, verify: bool = True
) -> Iterator[tuple[int, dict[str, Any], Path]]:
    """Yield ``(position, sample, shard path)`` for stream positions ``start <= position < stop``.

    The stream is the shards in ``order``; positions past its end wrap around to its start.  Shards
    wholly before ``start`` are skipped without being opened.
    """
    counts = [manifest.shards[i].num_samples for i in order]
    total = sum(counts)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    position = start
    while position < stop:
        base = (position // total) * total
        segment_stop = min(stop, base + total)
        shard = int(np.searchsorted(bounds, position - base, side="right")) - 1
        while position < segment_stop:
            entry = manifest.shards[order[shard]]
            first = position - base - int(bounds[shard])
            last = min(int(bounds[shard + 1]), segment_stop - base) - int(bounds[shard])
            path = shard_path(directory, entry)
            if first < last:
                samples = iter_shard(path, entry=entry, verify=verify, start=first, stop=last)
                for offset, sample in enumerate(samples, start=first):
                    yield base + int(bounds[shard]) + offset, sample, path
            position = base + int(bounds[shard]) + last
            shard += 1
