"""Shard reading speed: vq-data's verifying one-pass reader vs. webdataset's reader and a hash-then-read pass.

Writes a token shard set (16x16 int16 grids, the AR training case: many small members) and an image
shard set (random 64x64 PNGs: fewer, larger members) into a temp folder, then reads every sample with

* ``verify``    - ``vq_data.iter_samples`` as shipped: member checks + sha256/size/count while streaming;
* ``no-verify`` - the same reader with ``verify=False`` (member checks only);
* ``wds``       - webdataset's ``tar_file_expander`` + ``group_by_keys`` + vq-data's field decoding (the
  reader before verification existed: no member checks, no hash);
* ``hash+wds``  - ``vq_core.file_sha256`` of every shard, then ``wds``: verification by a second read.

All four must yield the same keys and fields before a time is printed.  The files are in the page cache
after a warm-up round, so the times measure CPU cost (parse, hash, decode), not the disk.  Each time is the
process CPU time (``time.process_time``: on a shared machine, other jobs' load barely moves it), best of
``--repeats`` rounds that interleave the four readers.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from webdataset.tariterators import group_by_keys, tar_file_expander

from vq_core import DatasetInfo, TokenizerInfo, file_sha256
from vq_data import ShardSetWriter, iter_samples, open_manifest
from vq_data.shards.codec import decode_field


def write_tokens(directory: Path, n: int) -> None:
    tok = TokenizerInfo(name="bench", config_hash="0", checkpoint_sha256="0" * 64, codebook_size=16384, grid=(16, 16),
                        dtype="int16", image_size=256)  # fmt: skip
    rng = np.random.default_rng(0)
    with ShardSetWriter(directory, kind="tokens", dataset=DatasetInfo(name="bench", source="random"), tokenizer=tok,
                        samples_per_shard=1000, tool="bench", tool_version="0") as writer:  # fmt: skip
        for i in range(n):
            writer.write({"__key__": f"s{i:07d}", "tokens.npy": rng.integers(0, 16384, (16, 16)).astype(np.int16), "cls": i % 1000})


def write_images(directory: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    with ShardSetWriter(directory, kind="images", dataset=DatasetInfo(name="bench", source="random"), samples_per_shard=256,
                        tool="bench", tool_version="0") as writer:  # fmt: skip
        for i in range(n):
            buffer = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, format="png", compress_level=1)
            writer.write({"__key__": f"s{i:07d}", "png": buffer.getvalue(), "cls": i % 1000})


def wds_samples(directory: Path, *, hash_first: bool) -> Iterator[dict[str, Any]]:
    for entry in open_manifest(directory).shards:
        path = directory / entry.name
        if hash_first:
            assert file_sha256(path) == entry.sha256
        with open(path, "rb") as stream:
            for raw in group_by_keys(tar_file_expander([{"url": str(path), "stream": stream}])):
                yield {"__key__": raw["__key__"], **{f: decode_field(f, v, where="") for f, v in raw.items() if not f.startswith("__")}}


def digest(samples: Iterator[dict[str, Any]]) -> tuple[int, int]:
    """(count, checksum over keys and field bytes): the readers must agree on it."""
    count, check = 0, 0
    for sample in samples:
        count += 1
        for field, value in sorted(sample.items()):
            data = value.tobytes() if isinstance(value, np.ndarray) else str(value).encode() if not isinstance(value, bytes) else value
            check = (check * 31 + hash((field, data))) & 0xFFFFFFFF
    return count, check


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=20000, help="token samples")
    parser.add_argument("--images", type=int, default=2000, help="64x64 PNG samples")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"tokens 16x16": (Path(tmp) / "tokens", write_tokens, args.tokens), "png 64x64": (Path(tmp) / "images", write_images, args.images)}
        for name, (directory, write, n) in sets.items():
            write(directory, n)
            size_mb = sum(p.stat().st_size for p in directory.glob("*.tar")) / 1e6
            readers: dict[str, Callable[[], tuple[int, int]]] = {
                "verify": lambda d=directory: digest(iter_samples(d)),
                "no-verify": lambda d=directory: digest(iter_samples(d, verify=False)),
                "wds": lambda d=directory: digest(wds_samples(d, hash_first=False)),
                "hash+wds": lambda d=directory: digest(wds_samples(d, hash_first=True)),
            }
            answers = {read() for read in readers.values()}  # warm-up round: page cache, imports
            times = dict.fromkeys(readers, float("inf"))
            for _ in range(args.repeats):  # rounds interleave the readers, so load from other processes hits all alike
                for label, read in readers.items():
                    tic = time.process_time()
                    answers.add(read())
                    times[label] = min(times[label], time.process_time() - tic)
            assert len(answers) == 1, f"readers disagree on {name}: {answers}"
            row = {"set": name, "samples": n, "MB": round(size_mb, 1), **{k: round(v, 3) for k, v in times.items()},
                   "verify / wds": round(times["verify"] / times["wds"], 2), "verify / hash+wds": round(times["verify"] / times["hash+wds"], 2)}  # fmt: skip
            rows.append(row)
    header = list(rows[0])
    print(" | ".join(header))
    for row in rows:
        print(" | ".join(str(row[k]) for k in header))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
