"""Images of a source -> an equal-sized webdataset shard set with a manifest (resumable).

Every record is opened, resized/centre-cropped to ``image_size`` and stored as ``png`` (lossless)
or ``jpg`` with its ``cls`` label and a ``json`` field (source id, crop box).  The record list is
deterministic, so a killed job resumes by skipping the records behind the ``num_done`` samples
already durable in whole shards, and the finished shards are byte-identical to an uninterrupted run.

Unreadable images stop the job with an error naming the file, unless ``skip_bad`` is set: then each
is logged and listed in ``skipped.json`` (written atomically before the job moves on, so a resumed
job knows which records never became samples).
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from contextlib import closing
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vq_core import MANIFEST_NAME, Manifest, ManifestError, atomic_write_text, progress
from vq_data.imageio import ImageDecodeError, ImageFormat, encode_image
from vq_data.shards import ShardSetWriter
from vq_data.sources import ImageRecord, ImageSource, SourceError
from vq_data.transforms import resize_center_crop
from vq_data.names import SKIPPED_NAME
from vq_data.version import __version__

log = logging.getLogger(__name__)

TOOL = "vq-data"


def read_skipped(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Records left out by ``skip_bad`` (``index``, ``key``, ``source``, ``error``); empty when none."""
    path = Path(directory) / SKIPPED_NAME
    if not path.is_file():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8"))["skipped"])
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ManifestError(f"{path} is not a valid skipped-records file ({err}); delete it and re-run with --overwrite") from err


def _write_skipped(directory: Path, skipped: list[dict[str, Any]]) -> None:
    entries = sorted(skipped, key=lambda e: e["index"])
    atomic_write_text(directory / SKIPPED_NAME, json.dumps({"skipped": entries}, indent=2, sort_keys=True) + "\n")


def resume_position(num_records: int, num_done: int, skipped: set[int]) -> int:
    """Index of the first record not yet in a shard: ``num_done`` good records plus the skipped ones before."""
    good = 0
    index = 0
    while good < num_done:
        if index >= num_records:
            raise ManifestError(f"the shard set holds {num_done} samples but the source has only {num_records} records")
        if index not in skipped:
            good += 1
        index += 1
    return index


def pack(
    source: ImageSource,
    out_dir: str | os.PathLike[str],
    *,
    samples_per_shard: int = 256,
    image_size: int = 256,
    image_format: ImageFormat = "png",
    skip_bad: bool = False,
    overwrite: bool = False,
    workers: int = 1,
) -> Manifest:
    """Write ``source`` as an image shard set in ``out_dir``; resumes a partial set, returns the manifest.

    ``workers > 1`` decodes/resizes/encodes in that many threads (PIL releases the GIL for most of
    it); samples are still written in record order, so the shards do not depend on ``workers``.
    """
    if image_format not in ("png", "jpg"):
        raise ValueError(f"image_format must be 'png' or 'jpg', got {image_format!r}")
    if image_size <= 0:
        raise ValueError(f"image_size must be > 0, got {image_size}")
    out = Path(out_dir)
    records = source.records()
    dataset = source.dataset_info(image_size=image_size, transform=f"resize_center_crop({image_size}, bicubic) -> {image_format}")
    resuming = (out / MANIFEST_NAME).is_file() and not overwrite
    with ShardSetWriter(
        out,
        kind="images",
        dataset=dataset,
        samples_per_shard=samples_per_shard,
        tool=TOOL,
        tool_version=__version__,
        overwrite=overwrite,
    ) as writer:
        if writer.complete:
            log.info("%s is already complete (%d samples); pass overwrite to rebuild it", out, writer.num_done)
            return writer.manifest
        if not resuming and (out / SKIPPED_NAME).exists():
            (out / SKIPPED_NAME).unlink()
        skipped = _checked_skipped(out, records) if resuming else []
        skipped_indices = {entry["index"] for entry in skipped}
        start = resume_position(len(records), writer.num_done, skipped_indices)
        written = writer.num_done
        todo = [i for i in range(start, len(records)) if i not in skipped_indices]
        prepared = _prepare_in_order(records, todo, image_size, image_format, workers)
        bar = progress(total=len(records), initial=len(records) - len(todo), desc=f"pack {source.name}", unit="img")
        with bar, closing(prepared):  # on an error, queued work is cancelled before it propagates
            for index, result in prepared:
                bar.update(1)
                record = records[index]
                if isinstance(result, ImageDecodeError):
                    if not skip_bad:
                        raise ImageDecodeError(
                            f"{result}; fix or remove the file, or pass --skip-bad to leave it out "
                            f"(it is then listed in {out / SKIPPED_NAME})"
                        ) from result
                    log.warning("skipping record %d (%s): %s", index, record.source_id, result)
                    skipped.append({"index": index, "key": record.key, "source": record.source_id, "error": str(result)})
                    _write_skipped(out, skipped)
                    continue
                writer.write(
                    {
                        "__key__": record.key,
                        image_format: result,
                        "cls": record.label,
                        "json": {"source": record.source_id, **record.meta},
                    }
                )
                written += 1
        if written == 0:
            raise SourceError(f"no image of {source.location} could be read; see {out / SKIPPED_NAME}")
    if skipped:
        log.warning("%d unreadable images were left out; they are listed in %s", len(skipped), out / SKIPPED_NAME)
    return writer.manifest


def _prepare(record: ImageRecord, image_size: int, image_format: ImageFormat) -> bytes | ImageDecodeError:
    """The stored bytes of one record, or the decode error (returned, so the caller decides)."""
    try:
        image = record.open()
    except ImageDecodeError as err:
        return err
    return encode_image(resize_center_crop(image, image_size), image_format)


def _prepare_in_order(
    records: list[ImageRecord], indices: list[int], image_size: int, image_format: ImageFormat, workers: int
) -> Iterator[tuple[int, bytes | ImageDecodeError]]:
    """``(index, _prepare(record))`` in index order, computed ahead by up to ``4 * workers`` threads."""
    if workers <= 1:
        for index in indices:
            yield index, _prepare(records[index], image_size, image_format)
        return
    window: deque[tuple[int, Future[bytes | ImageDecodeError]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="vq-data-pack") as pool:
        try:
            for index in indices:
                window.append((index, pool.submit(_prepare, records[index], image_size, image_format)))
                if len(window) >= 4 * workers:
                    done_index, future = window.popleft()
                    yield done_index, future.result()
            while window:
                done_index, future = window.popleft()
                yield done_index, future.result()
        finally:
            for _, future in window:
                future.cancel()


def _checked_skipped(out: Path, records: list[ImageRecord]) -> list[dict[str, Any]]:
    """The skipped list of the run being resumed, checked against the current record list."""
    skipped = read_skipped(out)
    for entry in skipped:
        index = entry.get("index")
        if not isinstance(index, int) or index >= len(records) or records[index].key != entry.get("key"):
            raise ManifestError(
                f"{out / SKIPPED_NAME} lists record {index} ({entry.get('key')}) which the source does not have "
                "at that position; the source changed since the partial run, so re-run with --overwrite"
            )
    return skipped
