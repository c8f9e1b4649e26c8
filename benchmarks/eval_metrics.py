"""Generation metrics cost and agreement: vq-eval vs. torch-fidelity in one run, same random weights, same images.

Both libraries read one randomly initialised Inception state dict (pytorch-fid's parameter names,
which are torch-fidelity's too) and the same uint8 images (``--images`` samples and as many
reference images, ``--size`` px, resized to 299 by each network with the TF1 bilinear resize):

* features - ``FIDInceptionV3.features`` (``resize="tf1"``: pool + sFID spatial features in one pass)
  vs. torch-fidelity's ``FeatureExtractorInceptionV3`` (pool + unbiased logits); images/s and the
  largest feature difference.
* metrics on those features - FID (``eigh``) vs. torch-fidelity's ``eigvals`` FID; IS (one split) vs.
  ``isc_features_to_metric(splits=1)``; KID (100 subsets of min(1000, N), seed 2020) vs.
  ``kid_features_to_metric`` on the same float64 features; precision/recall (k = 3) vs.
  ``prc_features_to_metric``; sFID (no torch-fidelity counterpart) timed alone.

    .venv/bin/python benchmarks/eval_metrics.py [--images 2048] [--size 64] [--batch 64] [--threads 2] [--device cpu] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import prc_features_to_metric

from vq_eval import INCEPTION_WEIGHTS_NAME, FeatureStatistics, frechet_distance, load_fid_inception, random_inception_state
from vq_eval.inception_score import inception_score_of_logits
from vq_eval.kid import kernel_inception_distance
from vq_eval.precision_recall import precision_recall


def _images(count: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random uint8 images (random walks along rows), not white noise."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.integers(-10, 11, size=(count, 3, size, size)), axis=3) + rng.integers(40, 216, size=(count, 3, 1, 1))
    return torch.from_numpy(np.clip(walk, 0, 255).astype(np.uint8))


def _clock(fn):  # noqa: ANN001, ANN202 - tiny local helper
    tic = time.perf_counter()
    out = fn()
    return time.perf_counter() - tic, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=2048, help="samples; as many reference images again")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / INCEPTION_WEIGHTS_NAME
        torch.save(random_inception_state(), weights)
        ours_net = load_fid_inception(weights, device=device, resize="tf1")
        theirs_net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(weights))
        theirs_net = theirs_net.to(device)
    images = torch.cat([_images(args.images, args.size, 0), _images(args.images, args.size, 1)])

    @torch.inference_mode()
    def ours_features() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pools, spatials, logits = [], [], []
        for batch in images.split(args.batch):
            f = ours_net.features(batch.to(device).float() / 127.5 - 1)
            pools.append(f.pool.cpu()), spatials.append(f.spatial.cpu()), logits.append(ours_net.unbiased_logits(f.pool).cpu())
        return tuple(torch.cat(x).double().numpy() for x in (pools, spatials, logits))  # type: ignore[return-value]

    @torch.inference_mode()
    def theirs_features() -> tuple[torch.Tensor, torch.Tensor]:
        out = [theirs_net(batch.to(device)) for batch in images.split(args.batch)]
        return torch.cat([o[0].cpu() for o in out]), torch.cat([o[1].cpu() for o in out])

    with torch.inference_mode():  # warm-up: allocator and kernel selection out of both timings
        ours_net.features(images[:2].to(device).float() / 127.5 - 1), theirs_net(images[:2].to(device))
    rows: list[dict] = []
    t_ours, (pool, spatial, logits) = _clock(ours_features)
    t_theirs, (their_pool, their_logits) = _clock(theirs_features)
    diff = float(np.abs(pool - their_pool.double().numpy()).max())
    n_total = images.shape[0]
    rows.append({"step": f"features ({n_total} images)", "torch-fidelity": f"{n_total / t_theirs:.2f} img/s",
                 "vq-eval": f"{n_total / t_ours:.2f} img/s (+ sFID features; max |diff| {diff:.2g})", "ratio": t_theirs / t_ours})  # fmt: skip

    n = args.images
    gen, ref = pool[:n], pool[n:]
    their_gen, their_ref = their_pool[:n].double(), their_pool[n:].double()

    def ours_fid() -> float:
        a, b = FeatureStatistics(), FeatureStatistics()
        a.update(gen), b.update(ref)
        return frechet_distance(a.mean, a.covariance, b.mean, b.covariance)

    def theirs_fid() -> float:
        s1, s2 = fid_features_to_statistics(their_gen), fid_features_to_statistics(their_ref)
        return fid_statistics_to_metric(s1, s2, verbose=False)["frechet_inception_distance"]

    def ours_sfid() -> float:
        a, b = FeatureStatistics(), FeatureStatistics()
        a.update(spatial[:n]), b.update(spatial[n:])
        return frechet_distance(a.mean, a.covariance, b.mean, b.covariance)

    size = min(1000, n)
    kid_kwargs = {"kid_subsets": 100, "kid_subset_size": size, "verbose": False, "rng_seed": 2020, "kid_kernel": "poly",
                  "kid_kernel_poly_degree": 3, "kid_kernel_poly_gamma": None, "kid_kernel_poly_coef0": 1}  # fmt: skip
    prc_kwargs = {"prc_neighborhood": 3, "prc_batch_size": 10000, "save_cpu_ram": False, "verbose": False}
    pairs = [
        ("FID", ours_fid, theirs_fid),
        ("IS (1 split)", lambda: inception_score_of_logits(logits[:n])[0],
         lambda: isc_features_to_metric(their_logits[:n], splits=1)["inception_score_mean"]),
        ("KID (100 x %d)" % size, lambda: kernel_inception_distance(gen, ref, subset_size=size)[0],
         lambda: kid_features_to_metric(their_gen, their_ref, **kid_kwargs)["kernel_inception_distance_mean"]),
        ("precision, recall (k=3)", lambda: precision_recall(ref, gen, 3, device=device),
         lambda: tuple(prc_features_to_metric(their_gen.float(), their_ref.float(), **prc_kwargs)[k] for k in ("precision", "recall"))),
        ("sFID (2023-d)", ours_sfid, None),
    ]  # fmt: skip
    for name, ours_fn, theirs_fn in pairs:
        t_o, value = _clock(ours_fn)
        if theirs_fn is None:
            rows.append({"step": name, "torch-fidelity": "-", "vq-eval": f"{t_o:.3f} s (= {value:.6g})", "ratio": None})
            continue
        t_t, expected = _clock(theirs_fn)
        rows.append({"step": name, "torch-fidelity": f"{t_t:.3f} s (= {_fmt(expected)})", "vq-eval": f"{t_o:.3f} s (= {_fmt(value)})",
                     "ratio": t_t / t_o})  # fmt: skip

    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}")
    print("| step | torch-fidelity | vq-eval | ratio |\n|---|---|---|---|")
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"x{row['ratio']:.2f}"
        print(f"| {row['step']} | {row['torch-fidelity']} | {row['vq-eval']} | {ratio} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def _fmt(value: float | tuple[float, ...]) -> str:
    return ", ".join(f"{v:.6g}" for v in value) if isinstance(value, tuple) else f"{value:.6g}"


if __name__ == "__main__":
    main()
