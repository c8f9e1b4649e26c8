"""``--help`` latency of every ``vq-*`` CLI: this checkout vs. an older commit (lazy imports, issue 13).

Each CLI runs as a fresh ``python`` process printing ``--help`` (top level, and one subcommand's), as a
user's shell would start the console script; the time is the wall time of that process, best of
``--repeats`` and the median beside it.  ``--ref REV`` also times the same commands with the sources
of git revision REV (extracted with ``git archive`` into a temp folder and put first on ``PYTHONPATH``, so
the same venv and installed third-party packages serve both); both must print the usage of the same command.

Also reported: which heavy modules (torch, torchvision, transformers, ray, PIL, webdataset, scipy) each
CLI module imports just to exist - the cause of a slow ``--help``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC_DIRS = ("packages/vq-core/src", "packages/vq-data/src", "packages/vq-tokenizers/src", "packages/vq-ar/src",
            "packages/vq-eval/src", "apps/vq-pipeline/src")
CLIS: dict[str, tuple[str, str]] = {  # console script -> (module with `main`, a subcommand)
    "vq-core": ("vq_core.cli", "checkpoint"),
    "vq-data": ("vq_data.cli", "pack"),
    "vq-tok": ("vq_tokenizers.cli", "train"),
    "vq-ar": ("vq_ar.cli", "sample"),
    "vq-eval": ("vq_eval.cli", "tokenizer"),
    "vq-pipeline": ("vq_pipeline.cli", "run"),
}
HEAVY = ("torch", "torchvision", "transformers", "ray", "PIL", "webdataset", "scipy")


def _env(src_root: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if src_root is not None:
        env["PYTHONPATH"] = os.pathsep.join(str(src_root / d) for d in SRC_DIRS)
    return env


def time_help(cli: str, module: str, args: list[str], src_root: Path | None, repeats: int) -> tuple[float, float, str]:
    """(best, median) seconds of ``python -c 'main()' ARGS`` and the usage line it printed."""
    code = f"import sys; from {module} import main; main(args=sys.argv[1:], prog_name={cli!r})"
    times, first = [], ""
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=_env(src_root))
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise RuntimeError(f"{module} {args}: exit {done.returncode}\n{done.stderr[-2000:]}")
        first = done.stdout.splitlines()[0]
    return min(times), statistics.median(times), first


def heavy_imports(module: str, src_root: Path | None) -> list[str]:
    """The heavy top-level packages importing ``module`` pulls in."""
    code = f"import sys, {module}; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(src_root), check=True)
    return done.stdout.split()


def extract(rev: str, into: Path) -> Path:
    """The sources of ``rev`` (the package src folders only) under ``into``."""
    archive = into / "src.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "--output", str(archive), rev, *SRC_DIRS], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default=None, help="also time this git revision's sources (e.g. a commit before lazy imports)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None, help="write the rows here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        trees: dict[str, Path | None] = {"this checkout": None}
        if args.ref:
            trees[args.ref] = extract(args.ref, Path(tmp))
        rows = []
        for cli, (module, sub) in CLIS.items():
            for tree, src in trees.items():
                for argv in (["--help"], [sub, "--help"]):
                    best, median, usage = time_help(cli, module, argv, src, args.repeats)
                    rows.append({"cli": cli, "args": " ".join(argv), "tree": tree, "best_s": round(best, 3),
                                 "median_s": round(median, 3), "usage": usage, "heavy_imports": heavy_imports(module, src)})
    for row in rows:
        same = [r for r in rows if r["cli"] == row["cli"] and r["args"] == row["args"]]
        if len({r["usage"].split("[OPTIONS]")[0] for r in same}) != 1:
            raise RuntimeError(f"{row['cli']} {row['args']}: the trees print different usage lines {[r['usage'] for r in same]}")
    print(f"{'command':<32} {'tree':<14} {'best s':>7} {'median s':>9}  heavy modules imported by the CLI module")
    for row in rows:
        command = f"{row['cli']} {row['args']}"
        print(f"{command:<32} {row['tree'][:14]:<14} {row['best_s']:>7.2f} {row['median_s']:>9.2f}  {' '.join(row['heavy_imports']) or '-'}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
