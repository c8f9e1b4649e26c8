"""FID cost: Inception feature extraction (images/s) and the Frechet step (2048-d), vq-eval vs. pytorch-fid.

Both networks get the same randomly initialised weights in pytorch-fid's file layout (no pretrained
weights offline) and the same images, in one run:

* features - ``vq_eval`` ``FIDInceptionV3.pool_features`` (default layout, and ``channels_last=True``)
  vs. ``pytorch_fid.inception.InceptionV3`` as ``get_activations`` calls it; ``--size`` px inputs are
  bilinearly resized to 299 by both.  The max feature difference is printed as a sanity check.
* Frechet - ``vq_eval.frechet_distance`` (``eigh``, the default; and ``sqrtm``) vs.
  ``pytorch_fid.fid_score.calculate_frechet_distance`` on the same full-rank 2048-d statistics.

    .venv/bin/python benchmarks/fid.py [--device cpu] [--images 64] [--batch 16] [--size 256] [--threads 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import numpy as np
import torch
from pytorch_fid import inception as pfid_inception
from pytorch_fid.fid_score import calculate_frechet_distance

from timing import timed
from vq_eval import INCEPTION_WEIGHTS_NAME, frechet_distance, load_fid_inception, random_inception_state


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256, help="input side length before the 299 resize")
    parser.add_argument("--samples", type=int, default=4096, help="feature vectors behind each 2048-d covariance")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / INCEPTION_WEIGHTS_NAME
        torch.save(random_inception_state(), weights)
        ours = load_fid_inception(weights, device=device)
        ours_cl = load_fid_inception(weights, device=device, channels_last=True)
        pfid_inception.load_state_dict_from_url = lambda *a, **k: torch.load(weights)  # their 'download'
        theirs = pfid_inception.InceptionV3([pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval().to(device)

    images01 = torch.rand(args.images, 3, args.size, args.size, generator=torch.Generator().manual_seed(0)).to(device)
    batches01 = images01.split(args.batch)

    @torch.inference_mode()
    def run_ours(model=ours) -> torch.Tensor:
        return torch.cat([model.pool_features(b * 2 - 1) for b in batches01])

    @torch.inference_mode()
    def run_theirs() -> torch.Tensor:
        return torch.cat([theirs(b)[0].flatten(1) for b in batches01])

    feature_diff = float((run_ours() - run_theirs()).abs().max())
    feature_diff_cl = float((run_ours(ours_cl) - run_theirs()).abs().max())
    t_ours = timed(run_ours, device, args.repeats)[0]
    t_ours_cl = timed(lambda: run_ours(ours_cl), device, args.repeats)[0]
    t_theirs = timed(run_theirs, device, args.repeats)[0]

    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(2048, 2048)) / 45
    f1 = np.abs(rng.normal(size=(args.samples, 2048)) @ mixing)
    f2 = np.abs(rng.normal(size=(args.samples, 2048)) @ mixing + 0.05)
    mu1, s1, mu2, s2 = f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False)
    fid_eigh = frechet_distance(mu1, s1, mu2, s2)
    fid_sqrtm = frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    fid_theirs = calculate_frechet_distance(mu1, s1, mu2, s2)
    t_eigh = timed(lambda: frechet_distance(mu1, s1, mu2, s2), torch.device("cpu"), 1, warmup=False)[0]
    t_sqrtm = timed(lambda: frechet_distance(mu1, s1, mu2, s2, method="sqrtm"), torch.device("cpu"), 1, warmup=False)[0]
    t_pfid = timed(lambda: calculate_frechet_distance(mu1, s1, mu2, s2), torch.device("cpu"), 1, warmup=False)[0]

    n = args.images
    results = {
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "images": n, "batch": args.batch, "size": args.size,
        "features_img_per_s": {"vq_eval": n / t_ours, "vq_eval_channels_last": n / t_ours_cl, "pytorch_fid": n / t_theirs},
        "features_speedup": {"vq_eval": t_theirs / t_ours, "vq_eval_channels_last": t_theirs / t_ours_cl},
        "features_max_abs_diff": {"vq_eval": feature_diff, "vq_eval_channels_last": feature_diff_cl},
        "frechet_s": {"vq_eval_eigh": t_eigh, "vq_eval_sqrtm": t_sqrtm, "pytorch_fid": t_pfid},
        "frechet_speedup": {"vq_eval_eigh": t_pfid / t_eigh, "vq_eval_sqrtm": t_pfid / t_sqrtm},
        "fid_rel_diff": {"vq_eval_eigh": abs(fid_eigh - fid_theirs) / fid_theirs, "vq_eval_sqrtm": abs(fid_sqrtm - fid_theirs) / fid_theirs},
    }  # fmt: skip
    print(f"device {results['device']}, {results['threads']} threads, {n} images of {args.size}px, batch {args.batch}")
    print(f"features  pytorch-fid           {n / t_theirs:8.2f} img/s")
    print(f"features  vq-eval               {n / t_ours:8.2f} img/s  x{t_theirs / t_ours:.2f}  (max |diff| {feature_diff:.2e})")
    print(f"features  vq-eval channels_last {n / t_ours_cl:8.2f} img/s  x{t_theirs / t_ours_cl:.2f}  (max |diff| {feature_diff_cl:.2e})")
    print(f"frechet   pytorch-fid sqrtm     {t_pfid:8.3f} s")
    print(
        f"frechet   vq-eval eigh          {t_eigh:8.3f} s  x{t_pfid / t_eigh:.2f}  (FID rel diff {results['fid_rel_diff']['vq_eval_eigh']:.1e})"
    )
    print(
        f"frechet   vq-eval sqrtm         {t_sqrtm:8.3f} s  x{t_pfid / t_sqrtm:.2f}  (FID rel diff {results['fid_rel_diff']['vq_eval_sqrtm']:.1e})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
