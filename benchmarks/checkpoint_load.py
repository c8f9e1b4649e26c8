"""Checkpoint save/load cost: the old ``torch.save`` pickle format vs. the safetensors + JSON format.

One payload of ``--mb`` megabytes (fp32 weights in ``--tensors`` tensors, plus an AdamW-style state
holding two moments for a tenth of them, RNG states and param groups), written and read in the same run:

* old - what vq-core did before safetensors: ``torch.save`` of the whole dict into a buffer, written
  atomically, read back with ``torch.load(map_location="cpu", weights_only=False)`` (which unpickles);
* new - ``vq_core.save_checkpoint`` / ``vq_core.load_checkpoint`` (tensors in safetensors, the rest as
  JSON in its header; nothing unpickled).

Both reads are checked to give back the same tensors before a time is printed.  ``load`` is the call
alone (safetensors maps the file, so its pages come in on first use); ``load+read`` also reads every
weight once (a sum), which is what a model load pays either way.  Times are the best of
``--repeats`` runs, files in ``--dir`` (default: a temporary directory; the OS page cache is warm for
both formats alike).

    .venv/bin/python benchmarks/checkpoint_load.py [--mb 300] [--tensors 200] [--repeats 5] [--dir /tmp] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from timing import timed
from vq_core import StrictConfig, atomic_write_bytes, load_checkpoint, save_checkpoint


class BenchConfig(StrictConfig):
    width: int = 1024


def payload(megabytes: float, tensors: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Weights of ``megabytes`` in ``tensors`` fp32 tensors, and an optimizer/RNG state beside them."""
    weights_numel = int(megabytes * 2**20 / 4 / 1.2)  # the moments below add ~20%
    per = weights_numel // tensors
    gen = torch.Generator().manual_seed(0)
    model = {f"layers.{i}.weight": torch.randn(per, generator=gen) for i in range(tensors)}
    moments = {i: {"step": torch.tensor(10.0), "exp_avg": torch.randn(per, generator=gen), "exp_avg_sq": torch.rand(per, generator=gen)}
               for i in range(tensors // 10)}  # fmt: skip
    state = {
        "optimizer": {"state": moments, "param_groups": [{"lr": 1e-4, "betas": (0.9, 0.95), "params": list(range(tensors))}]},
        "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
    }
    return model, state


def save_old(path: Path, model: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
    """The pre-safetensors ``save_checkpoint``: one pickled dict, written atomically."""
    config = BenchConfig()
    body = {"format": 1, "family": "bench", "config": config.model_dump(mode="json"), "config_hash": config.config_hash(),
            "model": model, "step": 1, "state": state}  # fmt: skip
    buffer = io.BytesIO()
    torch.save(body, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_old(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=False)


def touch(tensors: dict[str, torch.Tensor]) -> float:
    """Read every weight once: safetensors maps the file and pages it in lazily, torch.load reads it all."""
    return sum(float(t.sum()) for t in tensors.values())


def same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=300.0, help="checkpoint size in MiB")
    parser.add_argument("--tensors", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where the files go (default: a temporary directory)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cpu = torch.device("cpu")
    model, state = payload(args.mb, args.tensors)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        old, new = Path(tmp) / "old.pt", Path(tmp) / "new.safetensors"
        save = {
            "old": timed(lambda: save_old(old, model, state), cpu, args.repeats)[0],
            "new": timed(lambda: save_checkpoint(new, family="bench", config=BenchConfig(), model=model, step=1, state=state), cpu,
                         args.repeats)[0],
        }  # fmt: skip
        load_old_s, old_back = timed(lambda: load_old(old), cpu, args.repeats)
        load_new_s, new_back = timed(lambda: load_checkpoint(new), cpu, args.repeats)
        read = {
            "old": timed(lambda: touch(load_old(old)["model"]), cpu, args.repeats)[0],
            "new": timed(lambda: touch(load_checkpoint(new).model), cpu, args.repeats)[0],
        }
        sizes = {"old": old.stat().st_size / 2**20, "new": new.stat().st_size / 2**20}
    assert old_back is not None and new_back is not None
    assert same_tensors(old_back["model"], model) and same_tensors(new_back.model, model), "a format changed the weights"
    moments_old, moments_new = old_back["state"]["optimizer"]["state"], new_back.state["optimizer"]["state"]
    assert all(same_tensors(moments_old[i], moments_new[i]) for i in moments_old), "a format changed the optimizer state"
    load = {"old": load_old_s, "new": load_new_s}
    rows = [
        {"format": f, "file_mib": round(sizes[f], 1), "save_s": round(save[f], 3), "load_s": round(load[f], 3),
         "load_read_s": round(read[f], 3)}
        for f in ("old", "new")
    ]  # fmt: skip
    print(f"{platform.machine()} {platform.processor() or ''} torch {torch.__version__} threads {torch.get_num_threads()}")
    print(f"{'format':<7} {'file MiB':>9} {'save s':>8} {'load s':>8} {'load+read s':>12}")
    for row in rows:
        print(f"{row['format']:<7} {row['file_mib']:>9} {row['save_s']:>8} {row['load_s']:>8} {row['load_read_s']:>12}")
    print(
        f"new/old time: save {save['new'] / save['old']:.2f}x, load {load['new'] / load['old']:.2f}x, "
        f"load+read {read['new'] / read['old']:.2f}x"
    )
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "args": {k: str(v) for k, v in vars(args).items()}}, indent=2) + "\n")


if __name__ == "__main__":
    main()
