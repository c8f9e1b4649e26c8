"""Token shards <-> LlamaGen's ``.npy`` code layout, so either project's tools read the other's tokens.

LlamaGen's ``autoregressive/train/extract_codes_c2i.py`` writes, for image ``i`` of the dataset (in
order, ``i`` = 0 .. N-1), ``CODE_PATH/<dataset><size>_codes/<i>.npy`` holding int64 codes of shape
``(1, views, h*w)`` (views: 2 = image + horizontal flip, or 10 with ``--ten-crop``) and
``CODE_PATH/<dataset><size>_labels/<i>.npy`` holding the int64 label, shape ``(1,)``.  Its reader
(``dataset/imagenet.py`` ``CustomDataset``) draws one view at random only when the code folder's path
contains ``flip``; otherwise it would flatten all views into one sequence.

Export keeps the shard order (``i`` = position in the shard set) and writes, beside LlamaGen's two
folders, ``vq_export.json`` (the source manifest) and ``vq_samples.jsonl`` (each sample's key and
``json`` member), which import uses to give the samples back their keys.  Import needs the tokenizer
checkpoint the codes came from (for LlamaGen's own codes: its VQ converted by ``vq-tok convert
llamagen``), so the manifest carries the same tokenizer identity as ``vq-tok tokenize`` would write.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vq_core import DatasetInfo, Manifest, ManifestError, atomic_write_bytes
from vq_data import ShardSetWriter, check_key, iter_samples, open_manifest

log = logging.getLogger(__name__)

EXPORT_RECORD = "vq_export.json"
SAMPLES_RECORD = "vq_samples.jsonl"
TEN_CROP_VIEWS = 10


def llamagen_dirs(code_path: str | os.PathLike[str], dataset: str, image_size: int) -> tuple[Path, Path]:
    """LlamaGen's ``<code_path>/<dataset><size>_codes`` and ``..._labels`` folders."""
    root = Path(code_path)
    return root / f"{dataset}{image_size}_codes", root / f"{dataset}{image_size}_labels"


def export_llamagen_codes(
    shards: str | os.PathLike[str], out: str | os.PathLike[str], *, dataset: str = "imagenet", verify: bool = True
) -> tuple[Path, int]:
    """Write the token shard set ``shards`` in LlamaGen's layout under ``out``; returns (codes folder, count)."""
    manifest = open_manifest(shards)
    if manifest.kind != "tokens" or manifest.tokenizer is None:
        raise ManifestError(f"{Path(shards) / 'manifest.json'} is not a token shard set; export token shards (vq-tok tokenize)")
    tok = manifest.tokenizer
    length = math.prod(tok.grid)
    codes_dir, labels_dir = llamagen_dirs(out, dataset, tok.image_size)
    for folder in (codes_dir, labels_dir):
        if folder.exists() and any(folder.iterdir()):
            raise FileExistsError(f"{folder} is not empty; export into a new --out folder")
    codes_dir.mkdir(parents=True, exist_ok=True)
    labels_dir.mkdir(parents=True, exist_ok=True)
    views_seen: set[int] = set()
    records: list[str] = []
    count = 0
    for index, sample in enumerate(iter_samples(shards, manifest=manifest, verify=verify)):
        key = sample["__key__"]
        if "cls" not in sample:
            raise ManifestError(f"{shards}: sample {key} has no label (cls); LlamaGen's c2i codes need one per image")
        views = np.asarray(sample["tokens.npy"]).reshape(-1, length)
        views_seen.add(len(views))
        if len(views_seen) > 1:
            raise ManifestError(f"{shards}: sample {key} holds {len(views)} views, others {min(views_seen)}; LlamaGen needs one count")
        if len(views) > 1 and "flip" not in str(Path(out).resolve()):
            raise ValueError(
                f"--out {out}: samples hold {len(views)} views, and LlamaGen's CustomDataset draws one only when the "
                f"code path contains 'flip'; name the folder e.g. {Path(out).name}_flip_ten_crop"
            )
        np.save(codes_dir / f"{index}.npy", views.astype(np.int64)[None])
        np.save(labels_dir / f"{index}.npy", np.asarray([int(sample["cls"])], dtype=np.int64))
        records.append(json.dumps({"key": key, "json": sample.get("json")}))
        count = index + 1
    root = Path(out)
    atomic_write_bytes(root / SAMPLES_RECORD, "".join(line + "\n" for line in records).encode())
    record = {"dataset": dataset, "num_samples": count, "views": min(views_seen, default=1), "manifest": manifest.model_dump(mode="json")}
    atomic_write_bytes(root / EXPORT_RECORD, json.dumps(record, indent=2).encode())  # written last: the export is whole
    return codes_dir, count


def _find_codes(code_path: Path, dataset: str, image_size: int | None) -> tuple[Path, Path, int]:
    pattern = re.compile(rf"{re.escape(dataset)}(\d+)_codes")
    found = sorted(
        (int(m.group(1)), p) for p in code_path.iterdir() if p.is_dir() and (m := pattern.fullmatch(p.name))
    ) if code_path.is_dir() else []
    if image_size is not None:
        found = [(size, p) for size, p in found if size == image_size]
    if len(found) != 1:
        what = "no" if not found else "several"
        raise FileNotFoundError(
            f"{code_path}: {what} {dataset}<size>_codes folder{'' if image_size is None else f' for size {image_size}'} "
            f"(LlamaGen's --code-path layout); pass the --code-path folder{', and --image-size' if found else ''}"
        )
    size, codes_dir = found[0]
    labels_dir = code_path / f"{dataset}{size}_labels"
    if not labels_dir.is_dir():
        raise FileNotFoundError(f"{labels_dir} is missing: LlamaGen writes labels beside {codes_dir.name}")
    return codes_dir, labels_dir, size


def _count_files(folder: Path) -> int:
    """LlamaGen names files 0.npy .. N-1.npy; anything else (a gap, a stray name) is an error."""
    names = {p.name for p in folder.iterdir()}
    count = len(names)
    expected = {f"{i}.npy" for i in range(count)}
    if names != expected:
        odd = sorted(names - expected)[:3]
        raise ManifestError(f"{folder}: files must be 0.npy .. {count - 1}.npy without gaps; unexpected {odd}")
    return count


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)  # foreign data: never unpickle
    except (ValueError, OSError) as err:
        raise ManifestError(f"{path} is not a readable .npy array ({err})") from err
    if not np.issubdtype(array.dtype, np.integer):
        raise ManifestError(f"{path} holds {array.dtype} values; LlamaGen codes and labels are integers")
    return array


def _export_records(code_path: Path, count: int) -> tuple[list[dict[str, Any]] | None, DatasetInfo | None]:
    """Keys, json members and the dataset description an export left behind (None for LlamaGen's own codes)."""
    record_path, samples_path = code_path / EXPORT_RECORD, code_path / SAMPLES_RECORD
    if not (record_path.is_file() and samples_path.is_file()):
        return None, None
    record = json.loads(record_path.read_text(encoding="utf-8"))
    samples = [json.loads(line) for line in samples_path.read_text(encoding="utf-8").splitlines() if line]
    if record.get("num_samples") != count or len(samples) != count:
        log.warning("%s describes %s samples but %d code files exist; using index keys", record_path, record.get("num_samples"), count)
        return None, None
    return samples, Manifest.model_validate(record["manifest"]).dataset


def _samples(codes_dir: Path, labels_dir: Path, count: int, length: int, codebook_size: int) -> Iterator[tuple[np.ndarray, int]]:
    views_seen: int | None = None
    for index in range(count):
        path = codes_dir / f"{index}.npy"
        codes = _load_npy(path)
        if codes.ndim != 3 or codes.shape[0] != 1 or codes.shape[2] != length:
            raise ManifestError(f"{path}: codes of shape {codes.shape}; expected (1, views, {length}) for this tokenizer's grid")
        if views_seen is not None and codes.shape[1] != views_seen:
            raise ManifestError(f"{path}: {codes.shape[1]} views, earlier files {views_seen}")
        views_seen = codes.shape[1]
        if codes.min() < 0 or codes.max() >= codebook_size:
            raise ManifestError(f"{path}: codes span [{codes.min()}, {codes.max()}] but the tokenizer has {codebook_size} codes")
        label = _load_npy(labels_dir / f"{index}.npy")
        if label.size != 1:
            raise ManifestError(f"{labels_dir / f'{index}.npy'}: label of shape {label.shape}; expected (1,)")
        yield codes[0], int(label.reshape(-1)[0])


def import_llamagen_codes(
    code_path: str | os.PathLike[str],
    out: str | os.PathLike[str],
    tokenizer: str | os.PathLike[str],
    *,
    dataset: str = "imagenet",
    image_size: int | None = None,
    samples_per_shard: int = 256,
    overwrite: bool = False,
) -> Manifest:
    """Pack LlamaGen-layout codes under ``code_path`` into token shards at ``out`` for ``tokenizer``."""
    from vq_tokenizers import __version__, load_tokenizer, tokenizer_info

    code_path = Path(code_path)
    codes_dir, labels_dir, size = _find_codes(code_path, dataset, image_size)
    count = _count_files(codes_dir)
    if _count_files(labels_dir) != count:
        raise ManifestError(f"{labels_dir} and {codes_dir} hold different numbers of files")
    if count == 0:
        raise ManifestError(f"{codes_dir} holds no codes")
    model = load_tokenizer(tokenizer, map_location="cpu")
    first = _load_npy(codes_dir / "0.npy")
    views = first.shape[1] if first.ndim == 3 else 1
    info = tokenizer_info(model, tokenizer, ten_crop=views == TEN_CROP_VIEWS, image_size=size)
    length, dtype = math.prod(info.grid), np.dtype(info.dtype)
    records, dataset_info = _export_records(code_path, count)
    dataset_info = dataset_info or DatasetInfo(
        name=dataset, source=str(code_path.resolve()), description="LlamaGen extract_codes_c2i codes", image_size=size,
        transform=f"LlamaGen extract_codes_c2i ({views} views)",
    )
    with ShardSetWriter(
        out, kind="tokens", dataset=dataset_info, tokenizer=info, samples_per_shard=samples_per_shard,
        tool="vq-tok import-llamagen", tool_version=__version__, overwrite=overwrite,
    ) as writer:
        for index, (codes, label) in enumerate(_samples(codes_dir, labels_dir, count, length, model.codebook_size)):
            if index < writer.num_done:
                continue
            record = records[index] if records else {"key": f"{index:08d}", "json": None}
            grid = codes.reshape(len(codes), *info.grid) if len(codes) > 1 else codes.reshape(info.grid)
            meta = record["json"] if isinstance(record["json"], dict) else {"llamagen_index": index, "views": len(codes)}
            writer.write({"__key__": check_key(record["key"]), "tokens.npy": grid.astype(dtype), "cls": label, "json": meta})
    return writer.manifest
