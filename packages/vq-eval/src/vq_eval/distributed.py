"""The little of ``torch.distributed`` the metrics need: whether to reduce, on which device, and who reads what."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist


def is_distributed() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def rank_span(num_items: int, rank: int, world_size: int) -> tuple[int, int]:
    """(start, count) of ``rank``'s contiguous share of ``num_items``: ``ceil(n / world)`` each, the last ranks fewer.

    Every item is read by exactly one rank, so statistics summed over ranks equal those of one process.
    Ranks may get different counts (even zero): the metrics only synchronise once, at the end.
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    share = math.ceil(num_items / world_size)
    start = min(rank * share, num_items)
    return start, min(share, num_items - start)


def collective_device() -> torch.device:
    """NCCL reduces CUDA tensors only; every other backend takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(array: np.ndarray) -> np.ndarray:
    """Element-wise float64 sum of ``array`` over ranks (a copy; the input is unchanged)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(collective_device())
    dist.all_reduce(tensor)
    return tensor.cpu().numpy()


def all_reduce_max(value: int) -> int:
    """Largest ``value`` over ranks; lets a rank that saw no samples learn a feature dimension."""
    tensor = torch.tensor([value], dtype=torch.int64, device=collective_device())
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return int(tensor.item())


def gather_rows(array: np.ndarray) -> np.ndarray:
    """Concatenate every rank's rows in rank order (a no-op copy outside ``torch.distributed``).

    Precision/recall and KID compare individual features, so unlike the mean/covariance they cannot
    be reduced; ranks read contiguous shares in order, so the result is the single-process order.
    """
    if not is_distributed():
        return array
    parts: list[np.ndarray | None] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate([p for p in parts if p is not None and len(p)] or [array[:0]])
