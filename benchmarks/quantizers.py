"""Nearest-code throughput of vq-core's VectorQuantizer against three baselines in the same run.

For each codebook size K and code width D, ``--vectors`` random vectors are quantized (eval mode) by:

* ``vq-core``  — :class:`vq_core.VectorQuantizer` (blocked ``addmm`` + two-level argmin, cached codebook);
* ``vqpt``     — vector-quantize-pytorch's ``VectorQuantize`` in eval mode (the anchor library);
* ``cdist``    — the naive ``torch.cdist(x, codes).argmin(1)``;
* ``limit``    — one ``addmm(||c||^2, x, c.T, alpha=-2)`` + ``argmin`` over the whole codebook (the same
  FLOPs as ours with no blocking; the argmin pass over N x K distances is extra memory traffic, so this is
  a baseline, not the limit);
* ``gemm``     — the pure-GEMM rate: the bare ``x @ codes.T`` matmul of the same (N, D) x (D, K) shape, fed
  in the same row chunks, with no bias, no argmin and no result used: the work no exact search can skip.
  ``% gemm`` is vq-core's rate as a share of it (the issue-15 target: >= 80% for D >= 32).

The baselines materialise an N x K distance matrix, so for large K they are fed rows in chunks that
keep that matrix under ``--baseline-mib`` (otherwise a 262144-entry codebook would need tens of GiB);
the workspace column reports that matrix, and vq-core's own search block, in MiB.
Every method's indices are checked against ``limit`` (exact ties aside) before any number is printed.

    .venv/bin/python benchmarks/quantizers.py [--threads 2] [--sizes 1024 8192 65536 262144] [--dims 8 32 256]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

import torch
from torch.utils.benchmark import Timer

from vq_core import VectorQuantizer, VectorQuantizerConfig
from vq_core.distance import BLOCK_CODES, BLOCK_ROWS


def best_seconds(fn: Callable[[], object], min_run_time: float) -> float:
    """Median time of ``fn`` from ``torch.utils.benchmark`` (warm-up and thread settings handled there)."""
    return Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads()).blocked_autorange(min_run_time=min_run_time).median


def row_chunks(x: torch.Tensor, k: int, budget_mib: int) -> list[torch.Tensor]:
    rows = max(1, (budget_mib * 2**20) // (4 * k))
    return list(x.split(rows))


def run(k: int, d: int, n: int, budget_mib: int, min_run_time: float, with_vqpt: bool) -> dict[str, float]:
    torch.manual_seed(0)
    x = torch.randn(n, d)
    ours = VectorQuantizer(VectorQuantizerConfig(codebook_size=k, dim=d)).eval()
    with torch.no_grad():
        ours.codebook.normal_()
    codes = ours.codebook.detach()
    bias = (codes * codes).sum(1)
    chunks = row_chunks(x, k, budget_mib)

    def limit() -> torch.Tensor:
        return torch.cat([torch.addmm(bias, c, codes.T, alpha=-2).argmin(1) for c in chunks])

    def gemm() -> torch.Tensor:
        for c in chunks:
            out = torch.mm(c, codes.T)
        return out

    def cdist() -> torch.Tensor:
        return torch.cat([torch.cdist(c, codes).argmin(1) for c in chunks])

    def vq_core() -> torch.Tensor:
        with torch.no_grad():
            return ours.quantize(x)[1]

    methods: dict[str, Callable[[], torch.Tensor]] = {"vq-core": vq_core, "limit": limit, "cdist": cdist}
    if with_vqpt:
        from vector_quantize_pytorch import VectorQuantize

        ref = VectorQuantize(dim=d, codebook_size=k).eval()
        ref._codebook.embed.data.copy_(codes[None])
        ref._codebook.initted.data.fill_(True)

        def vqpt() -> torch.Tensor:
            with torch.no_grad():
                return torch.cat([ref(c[None])[1][0] for c in chunks])

        methods["vqpt"] = vqpt
    expected = limit()
    result: dict[str, float] = {"K": k, "D": d, "N": n}
    for name, fn in methods.items():
        agree = float((fn() == expected).float().mean())
        if agree < 0.999:
            raise AssertionError(f"{name} disagrees with the exact argmin on {1 - agree:.2%} of vectors (K={k}, D={d})")
        result[name] = n / best_seconds(fn, min_run_time)
    result["gemm"] = n / best_seconds(gemm, min_run_time)
    rows = min(n, BLOCK_ROWS * max(1, BLOCK_CODES // min(k, BLOCK_CODES)))
    result["ws_ours_mib"] = rows * min(k, BLOCK_CODES) * 4 / 2**20
    result["ws_baseline_mib"] = chunks[0].shape[0] * k * 4 / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1024, 8192, 65536, 262144])
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 32, 256])
    parser.add_argument("--vectors", type=int, default=16384, help="vectors per call (fewer for K >= 65536, see --work)")
    parser.add_argument("--work", type=float, default=2e11, help="cap on N*K*D per call, to keep the run short")
    parser.add_argument("--baseline-mib", type=int, default=512)
    parser.add_argument("--min-run-time", type=float, default=0.5)
    parser.add_argument("--skip-vqpt", action="store_true")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads; vectors/s (ratio = vq-core / other)")
    header = (f"{'K':>7} {'D':>4} {'N':>6} | {'vq-core':>9} {'gemm':>9} {'limit':>9} {'cdist':>9} {'vqpt':>9} | {'% gemm':>6} "
              f"{'/limit':>6} {'/cdist':>6} {'/vqpt':>6} | ws MiB ours/base | load")
    print(header)
    rows = []
    for k in args.sizes:
        for d in args.dims:
            n = int(min(args.vectors, max(256, args.work // (k * d))))
            r = run(k, d, n, args.baseline_mib, args.min_run_time, not args.skip_vqpt)
            rows.append(r)
            vqpt = r.get("vqpt", float("nan"))
            print(
                f"{k:>7} {d:>4} {n:>6} | {r['vq-core']:>9.0f} {r['gemm']:>9.0f} {r['limit']:>9.0f} {r['cdist']:>9.0f} {vqpt:>9.0f} | "
                f"{100 * r['vq-core'] / r['gemm']:>5.0f}% {r['vq-core'] / r['limit']:>6.2f} {r['vq-core'] / r['cdist']:>6.2f} "
                f"{r['vq-core'] / vqpt:>6.2f} | {r['ws_ours_mib']:.0f}/{r['ws_baseline_mib']:.0f} | {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
