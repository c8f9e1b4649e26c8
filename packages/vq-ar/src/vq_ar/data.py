"""Token shards in memory, and a deterministic, resumable, rank-sharded batch order over them.

AR training reads every sample many times and token sets are small (ImageNet at 16x16 int16 is
~0.65 GB), so the set is loaded once with :func:`vq_data.iter_samples` and batches are drawn by
index.  The order is a pure function of (seed, position): epoch ``e`` is the permutation
``rng(seed, e)``, and micro-batch ``k`` of rank ``r`` is a fixed slice of the concatenated epochs.
Resuming therefore needs only the micro-batch counter, and every rank sees disjoint samples.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vq_core import Manifest, ManifestError
from vq_data import iter_samples, open_manifest


@dataclass
class TokenSet:
    """All samples of a token shard set: tokens (N, variants, seq_len) and labels (N,)."""

    tokens: np.ndarray
    labels: np.ndarray
    keys: list[str]
    manifest: Manifest

    @property
    def num_samples(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_variants(self) -> int:
        """Stored augmentations per image (e.g. ten crops); training draws one per visit."""
        return int(self.tokens.shape[1])

    @property
    def num_classes(self) -> int:
        """Classes named by the manifest, or 1 + the largest label for sets that record none."""
        declared = self.manifest.dataset.num_classes
        return declared if declared > 0 else int(self.labels.max(initial=0)) + 1


def load_token_set(
    directory: str | os.PathLike[str], *, manifest: Manifest | None = None, verify: bool = True
) -> TokenSet:
    """Read a complete token shard set; tokens.npy may be (h, w), (n,) or (variants, h, w).

    Every shard is checked against the manifest's sha256 and sample count while it streams (one read),
    so a changed label or token is refused, naming the shard, before training sees it; ``verify=False``
    skips the hash (``--no-verify``).
    """
    directory = Path(directory)
    manifest = manifest or open_manifest(directory)
    if manifest.kind != "tokens" or manifest.tokenizer is None:
        raise ManifestError(f"{directory} holds {manifest.kind!r} shards; AR training needs token shards (vq-tok tokenize)")
    tok = manifest.tokenizer
    seq_len = int(np.prod(tok.grid))
    rows: list[np.ndarray] = []
    labels: list[int] = []
    keys: list[str] = []
    for sample in iter_samples(directory, manifest=manifest, verify=verify):
        key = sample["__key__"]
        if "tokens.npy" not in sample or "cls" not in sample:
            raise ManifestError(f"{directory}: sample {key} lacks 'tokens.npy' or 'cls' (fields: {sorted(sample)})")
        array = np.asarray(sample["tokens.npy"])
        if array.size % seq_len or array.size == 0:
            raise ManifestError(
                f"{directory}: sample {key} has tokens of shape {array.shape}, not a multiple of the "
                f"manifest grid {tuple(tok.grid)}"
            )
        rows.append(array.reshape(-1, seq_len))
        labels.append(int(sample["cls"]))
        keys.append(key)
    if not rows:
        raise ManifestError(f"{directory}: the token shard set is empty")
    if len({r.shape[0] for r in rows}) > 1:
        raise ManifestError(f"{directory}: samples hold different numbers of token variants; re-tokenize")
    tokens = np.stack(rows)
    if tokens.min() < 0 or tokens.max() >= tok.codebook_size:
        raise ManifestError(
            f"{directory}: token ids span [{tokens.min()}, {tokens.max()}] but the manifest codebook is "
            f"{tok.codebook_size}; the shards do not belong to this manifest"
        )
    label_array = np.asarray(labels, dtype=np.int64)
    declared = manifest.dataset.num_classes
    if label_array.min() < 0 or (declared and label_array.max() >= declared):
        raise ManifestError(
            f"{directory}: labels span [{label_array.min()}, {label_array.max()}] but dataset.num_classes is {declared}"
        )
    return TokenSet(tokens=tokens, labels=label_array, keys=keys, manifest=manifest)


class BatchOrder:
    """Micro-batch ``k`` of this rank, for any ``k``, without replaying earlier batches."""

    def __init__(self, data: TokenSet, batch_size: int, *, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.data = data
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self._epochs: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(permutation, variant choice) of one epoch, kept for the two most recent epochs."""
        if epoch not in self._epochs:
            rng = np.random.default_rng([self.seed, epoch])
            order = rng.permutation(self.data.num_samples)
            variants = rng.integers(self.data.num_variants, size=self.data.num_samples)
            self._epochs[epoch] = (order, variants)
            for old in [e for e in self._epochs if e < epoch - 1]:
                del self._epochs[old]
        return self._epochs[epoch]

    def indices(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(sample index, variant index) arrays of micro-batch ``k`` for this rank."""
        n = self.data.num_samples
        first = (k * self.world_size + self.rank) * self.batch_size
        positions = np.arange(first, first + self.batch_size)
        samples = np.empty(self.batch_size, dtype=np.int64)
        variants = np.empty(self.batch_size, dtype=np.int64)
        for epoch in np.unique(positions // n):
            in_epoch = positions // n == epoch
            order, choice = self._epoch(int(epoch))
            picked = order[positions[in_epoch] % n]
            samples[in_epoch] = picked
            variants[in_epoch] = choice[picked]
        return samples, variants

    def batch(self, k: int, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens (B, seq_len) int64 and labels (B,) of micro-batch ``k``."""
        samples, variants = self.indices(k)
        tokens = torch.from_numpy(self.data.tokens[samples, variants].astype(np.int64))
        labels = torch.from_numpy(self.data.labels[samples])
        return tokens.to(device, non_blocking=True), labels.to(device, non_blocking=True)
