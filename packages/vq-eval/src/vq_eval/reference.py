"""Reference statistics for FID: an ``.npz`` with ``mu``, ``sigma``, ``n`` and how they were made.

A reference is computed once per dataset/split (``vq-eval fid-cache``) and compared against many
sample sets.  FID between statistics made with different networks or preprocessing is meaningless,
so the file records the Inception weights' sha256, the image transform, the resize the network
applies, and the dataset manifest's sha256; :meth:`ReferenceStats.check_compatible` refuses to compare
statistics whose network differs.  ``mu``/``sigma`` keep pytorch-fid's key names, so its own
``.npz`` files load here too (with empty provenance).
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vq_core import atomic_write_bytes
from vq_eval.frechet import FrechetMethod, frechet_distance
from vq_eval.statistics import FeatureStatistics


class ReferenceError(ValueError):
    """A reference file is missing, malformed, or was made with a different feature network."""


@dataclass(frozen=True)
class ReferenceStats:
    """Mean/covariance of Inception features over ``n`` images, with provenance in ``meta``.

    ``meta`` keys written by this package: ``feature_extractor``, ``weights_sha256``, ``dims``,
    ``network_resize`` (what the network does to its input), ``transform`` (what was done to the
    images before), ``source``, ``source_kind``, ``manifest_sha256`` (shard sets only), ``created``,
    ``tool_version``.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_statistics(cls, stats: FeatureStatistics, meta: dict[str, Any] | None = None) -> ReferenceStats:
        return cls(mu=stats.mean.copy(), sigma=stats.covariance, n=stats.count, meta=dict(meta or {}))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically; ``meta`` is stored as a JSON string so loading needs no pickle."""
        buffer = io.BytesIO()
        np.savez(buffer, mu=self.mu, sigma=self.sigma, n=np.int64(self.n), meta=np.array(json.dumps(self.meta, sort_keys=True)))
        path = Path(path)
        atomic_write_bytes(path, buffer.getvalue())
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ReferenceStats:
        path = Path(path)
        if not path.is_file():
            raise ReferenceError(f"reference statistics {path} do not exist; make them with `vq-eval fid-cache SOURCE --out {path}`")
        try:
            with np.load(path, allow_pickle=False) as data:
                if "mu" not in data or "sigma" not in data:
                    raise ReferenceError(f"reference statistics {path} lack 'mu'/'sigma' arrays (keys: {sorted(data.keys())})")
                mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
                n = int(data["n"]) if "n" in data else 0
                meta = json.loads(str(data["meta"])) if "meta" in data else {}
        except (OSError, ValueError) as err:
            if isinstance(err, ReferenceError):
                raise
            raise ReferenceError(f"reference statistics {path} are not a readable .npz: {err}") from err
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ReferenceError(f"reference statistics {path}: mu {mu.shape} and sigma {sigma.shape} do not match")
        return cls(mu=mu, sigma=sigma, n=n, meta=meta)

    def check_compatible(self, other: ReferenceStats, *, where: str = "statistics") -> None:
        """Refuse to compare features of different dimension or from different Inception weights."""
        if self.mu.shape != other.mu.shape:
            raise ReferenceError(f"{where}: feature dimension {other.mu.shape[0]} != reference {self.mu.shape[0]}")
        mine, theirs = self.meta.get("weights_sha256"), other.meta.get("weights_sha256")
        if mine and theirs and mine != theirs:
            raise ReferenceError(
                f"{where}: features come from Inception weights {theirs[:12]} but the reference used {mine[:12]} "
                f"({self.meta.get('weights_path', '?')}); recompute the reference with the same --inception-weights"
            )

    def frechet_distance(self, other: ReferenceStats, *, method: FrechetMethod = "eigh") -> float:
        """FID between ``other`` and this reference, after the compatibility check."""
        self.check_compatible(other)
        return frechet_distance(other.mu, other.sigma, self.mu, self.sigma, method=method)
