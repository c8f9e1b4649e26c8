"""Rank and world size: from ``torch.distributed`` when it is initialised, else from the caller."""

from __future__ import annotations

import torch.distributed as dist


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size) for splitting data; explicit values must agree with an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        actual = (dist.get_rank(), dist.get_world_size())
        if (rank is not None and rank != actual[0]) or (world_size is not None and world_size != actual[1]):
            raise ValueError(
                f"rank/world_size {rank}/{world_size} were passed but torch.distributed says {actual[0]}/{actual[1]}; "
                "leave them out to use the process group"
            )
        return actual
    rank = 0 if rank is None else rank
    world_size = 1 if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} must lie in [0, world_size={world_size})")
    return rank, world_size
