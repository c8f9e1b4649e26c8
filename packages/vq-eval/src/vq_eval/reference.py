"""Reference statistics for FID/sFID: an ``.npz`` with ``mu``, ``sigma`` (and ``mu_s``, ``sigma_s``, ``features``), ``n`` and how they were made.

A reference is computed once per dataset/split (``vq-eval fid-cache``) and compared against many
sample sets.  FID between statistics made with different networks or preprocessing is meaningless,
so the file records the Inception weights' sha256, the image transform and resolution, the resize
the network applies, and the dataset manifest's sha256; :meth:`ReferenceStats.check_compatible`
refuses to compare statistics whose network or preprocessing differs, and :meth:`check_images`
refuses images of another resolution or transform.  Key names are pytorch-fid's and ADM's
(``mu``/``sigma``, spatial ``mu_s``/``sigma_s``), so their ``.npz`` files load here too, and ours
load in ADM's evaluator; ``features`` (the pool features themselves, optional) feed precision,
recall and KID.  An ADM reference batch (``arr_0`` images beside the statistics, no ``meta``) is
recognised and described as made by the TF graph with its TF1 resize.
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
from vq_eval.inception import PREPROCESSINGS
from vq_eval.statistics import FeatureStatistics

ADM_BATCH_META = {
    "source_kind": "adm-batch",
    "feature_extractor": "TF Inception graph 2015-12-05 (classify_image_graph_def.pb, ADM evaluator)",
    "resize": "tf1",
    "network_resize": PREPROCESSINGS["tf1"],
}


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
    mu_s: np.ndarray | None = None  # spatial (sFID) statistics, ADM's key names
    sigma_s: np.ndarray | None = None
    features: np.ndarray | None = field(default=None, repr=False)  # (n, 2048) float32 pool features

    @classmethod
    def from_statistics(
        cls,
        stats: FeatureStatistics,
        meta: dict[str, Any] | None = None,
        *,
        spatial: FeatureStatistics | None = None,
        features: np.ndarray | None = None,
    ) -> ReferenceStats:
        return cls(
            mu=stats.mean.copy(), sigma=stats.covariance, n=stats.count, meta=dict(meta or {}),
            mu_s=None if spatial is None else spatial.mean.copy(), sigma_s=None if spatial is None else spatial.covariance,
            features=features,
        )  # fmt: skip

    @property
    def spatial(self) -> ReferenceStats | None:
        """The sFID statistics as a reference of their own (same provenance), when present."""
        if self.mu_s is None or self.sigma_s is None:
            return None
        return ReferenceStats(mu=self.mu_s, sigma=self.sigma_s, n=self.n, meta=self.meta)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically; ``meta`` is stored as a JSON string so loading needs no pickle."""
        arrays: dict[str, np.ndarray] = {"mu": self.mu, "sigma": self.sigma}
        if self.mu_s is not None and self.sigma_s is not None:
            arrays.update(mu_s=self.mu_s, sigma_s=self.sigma_s)
        if self.features is not None:
            arrays["features"] = np.asarray(self.features, dtype=np.float32)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays, n=np.int64(self.n), meta=np.array(json.dumps(self.meta, sort_keys=True)))
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
                spatial = (data["mu_s"].astype(np.float64), data["sigma_s"].astype(np.float64)) if "mu_s" in data else (None, None)
                features = data["features"].astype(np.float32) if "features" in data else None
                meta = json.loads(str(data["meta"])) if "meta" in data else {}
                if "arr_0" in data and "meta" not in data:  # an ADM reference batch
                    meta = {**ADM_BATCH_META, "source": str(path)}
                    shape = _npy_shape(data, "arr_0")
                    n = shape[0]
                    meta["resolution"] = f"{shape[1]}x{shape[2]}"
                else:
                    n = int(data["n"]) if "n" in data else 0
        except (OSError, ValueError) as err:
            if isinstance(err, ReferenceError):
                raise
            raise ReferenceError(f"reference statistics {path} are not a readable .npz: {err}") from err
        if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ReferenceError(f"reference statistics {path}: mu {mu.shape} and sigma {sigma.shape} do not match")
        if spatial[0] is not None and (spatial[0].ndim != 1 or spatial[1].shape != (spatial[0].shape[0],) * 2):
            raise ReferenceError(f"reference statistics {path}: mu_s {spatial[0].shape} and sigma_s {spatial[1].shape} do not match")
        if features is not None and features.shape[1:] != mu.shape:
            raise ReferenceError(f"reference statistics {path}: features {features.shape} do not match mu {mu.shape}")
        return cls(mu=mu, sigma=sigma, n=n, meta=meta, mu_s=spatial[0], sigma_s=spatial[1], features=features)

    @property
    def resize(self) -> str | None:
        """The network input arithmetic (``"pytorch-fid"``/``"tf1"``) these statistics were made with, if known."""
        if "resize" in self.meta:
            return str(self.meta["resize"])
        known = {text: name for name, text in PREPROCESSINGS.items()}
        return known.get(self.meta.get("network_resize", ""))

    def check_compatible(self, other: ReferenceStats, *, where: str = "statistics") -> None:
        """Refuse to compare features of different dimension, Inception weights or network preprocessing."""
        if self.mu.shape != other.mu.shape:
            raise ReferenceError(f"{where}: feature dimension {other.mu.shape[0]} != reference {self.mu.shape[0]}")
        mine, theirs = self.meta.get("weights_sha256"), other.meta.get("weights_sha256")
        if mine and theirs and mine != theirs:
            raise ReferenceError(
                f"{where}: features come from Inception weights {theirs[:12]} but the reference used {mine[:12]} "
                f"({self.meta.get('weights_path', '?')}); recompute the reference with the same --inception-weights"
            )
        if self.resize and other.resize and self.resize != other.resize:
            raise ReferenceError(
                f"{where}: features were made with the {other.resize!r} network resize but the reference "
                f"({self.meta.get('source', '?')}) with {self.resize!r}; pass --resize {self.resize} (or recompute the reference)"
            )

    def check_images(self, image_meta: dict[str, Any], *, where: str = "images", transform: bool = False) -> None:
        """Refuse images of another resolution (and, with ``transform``, another crop) than the reference's.

        FID between a 256-px reference and 512-px images measures the resize, not the model.  rFID
        compares reconstructions of a split with that split's reference, so there the transform must
        match too; generated samples have no crop of their own, so for FID only the resolution is
        compared.  ADM batches and pytorch-fid files record no transform: only what is known is compared.
        """
        checks = [("resolution", "pass --image-size to score images at the reference's size")]
        if transform:
            checks.append(("transform", "make the reference with the same --image-size and source as the images"))
        for key, fix in checks:
            mine, theirs = self.meta.get(key), image_meta.get(key)
            if mine and theirs and mine != theirs:
                raise ReferenceError(
                    f"{where} {image_meta.get('source', '')}: {key} {theirs!r} differs from the reference's {mine!r} "
                    f"({self.meta.get('source', '?')}); {fix}"
                )

    def frechet_distance(self, other: ReferenceStats, *, method: FrechetMethod = "eigh") -> float:
        """FID between ``other`` and this reference, after the compatibility check."""
        self.check_compatible(other)
        return frechet_distance(other.mu, other.sigma, self.mu, self.sigma, method=method)


def _npy_shape(data: Any, key: str) -> tuple[int, ...]:
    """Shape of an ``.npz`` member from its header, without reading the (possibly 10 GB) array."""
    with data.zip.open(f"{key}.npy") as stream:
        version = np.lib.format.read_magic(stream)
        header = np.lib.format.read_array_header_1_0(stream) if version == (1, 0) else np.lib.format.read_array_header_2_0(stream)
    return tuple(int(d) for d in header[0])
