"""Packing sources into shard sets: contents, crash/resume, bad inputs, and the CLI."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vq_core import Manifest, ManifestError
from vq_data import (
    BundledSource,
    FolderSource,
    ImageDecodeError,
    ShardError,
    SourceError,
    iter_samples,
    open_manifest,
    pack,
    read_skipped,
    verify_shards,
)
from vq_data.cli import main


def _resize_crop(image: Image.Image, size: int) -> Image.Image:
    """Independent reference: shorter side to size (bicubic), central square."""
    width, height = image.size
    new = (size, int(size * height / width)) if width <= height else (int(size * width / height), size)
    resized = image.resize(new, Image.BICUBIC)
    left, top = int(round((new[0] - size) / 2)), int(round((new[1] - size) / 2))
    return resized.crop((left, top, left + size, top + size))


def test_pack_folder_round_trip(tmp_path, image_folder):
    manifest = pack(FolderSource(image_folder), tmp_path / "out", samples_per_shard=4, image_size=16)
    assert manifest.complete and manifest.kind == "images"
    assert [s.num_samples for s in manifest.shards] == [4, 4, 3]
    assert manifest.dataset.class_names == ["cat", "dog", "emu"] and manifest.dataset.image_size == 16
    assert verify_shards(tmp_path / "out") == []
    samples = list(iter_samples(tmp_path / "out"))
    files = sorted(p for p in image_folder.rglob("*") if p.is_file())
    assert len(samples) == len(files)
    for sample, path in zip(samples, files):
        relative = path.relative_to(image_folder).as_posix()
        assert sample["json"] == {"source": relative}
        assert sample["cls"] == ["cat", "dog", "emu"].index(relative.split("/")[0])
        stored = Image.open(io.BytesIO(sample["png"]))
        expected = _resize_crop(Image.open(path).convert("RGB"), 16)
        np.testing.assert_array_equal(np.asarray(stored), np.asarray(expected))


class _CrashingSource(BundledSource):
    """Raises from the source after ``crash_after`` images were opened, like a job killed mid-pack."""

    def __init__(self, crash_after: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.crash_after = crash_after
        self.opened = 0

    def records(self):
        records = super().records()
        return [type(r)(r.key, r.label, r.source_id, self._counting(r.opener), r.meta) for r in records]

    def _counting(self, opener):
        def open_or_crash():
            if self.opened == self.crash_after:
                raise KeyboardInterrupt("killed")
            self.opened += 1
            return opener()

        return open_or_crash


@pytest.mark.parametrize("image_format", ["png", "jpg"])
def test_killed_pack_resumes_to_byte_identical_shards(tmp_path, image_format):
    kwargs = dict(crops_per_image=4, seed=1, photos=["coffee", "chelsea", "rocket"])
    settings = dict(samples_per_shard=5, image_size=12, image_format=image_format)
    straight = pack(BundledSource(**kwargs), tmp_path / "straight", **settings)
    with pytest.raises(KeyboardInterrupt):
        pack(_CrashingSource(8, **kwargs), tmp_path / "crashed", **settings)
    partial = Manifest.load(tmp_path / "crashed")
    assert not partial.complete and partial.num_samples == 5  # the whole first shard survived
    with pytest.raises(ManifestError, match="incomplete"):
        open_manifest(tmp_path / "crashed")
    resumed_source = _CrashingSource(10**6, **kwargs)
    resumed = pack(resumed_source, tmp_path / "crashed", **settings)
    assert resumed_source.opened == 12 - 5  # only the records after the durable shard were read again
    assert [s.model_dump() for s in resumed.shards] == [s.model_dump() for s in straight.shards]
    for entry in straight.shards:
        assert (tmp_path / "crashed" / entry.name).read_bytes() == (tmp_path / "straight" / entry.name).read_bytes()
    assert resumed.model_dump(exclude={"created"}) == straight.model_dump(exclude={"created"})
    threaded = pack(BundledSource(**kwargs), tmp_path / "threaded", workers=3, **settings)
    assert [s.sha256 for s in threaded.shards] == [s.sha256 for s in straight.shards]  # threads do not change shards
    again = _CrashingSource(0, **kwargs)
    assert pack(again, tmp_path / "crashed", **settings).complete and again.opened == 0  # complete: nothing to do


def test_corrupt_image_stops_with_its_name_or_is_skipped_and_recorded(tmp_path, image_folder):
    bad = image_folder / "dog" / "e.png"
    bad.write_bytes(bad.read_bytes()[:60])
    out = tmp_path / "out"
    with pytest.raises(ImageDecodeError, match=r"dog/e\.png.*--skip-bad"):
        pack(FolderSource(image_folder), out, samples_per_shard=2, image_size=8, workers=3)
    kept = Manifest.load(out)
    assert kept.num_samples == 4 and not kept.complete  # shards written before the bad file are kept
    before = {e.name: (out / e.name).read_bytes() for e in kept.shards}
    manifest = pack(FolderSource(image_folder), out, samples_per_shard=2, image_size=8, skip_bad=True)
    assert manifest.complete and manifest.num_samples == 10
    assert all((out / name).read_bytes() == data for name, data in before.items())
    skipped = read_skipped(out)
    assert [(s["key"], s["source"]) for s in skipped] == [("dog/e_png", "dog/e.png")] and "e.png" in skipped[0]["error"]
    assert "dog/e_png" not in {s["__key__"] for s in iter_samples(out)}
    # a fresh, uninterrupted skip-bad run gives the same shards as the failed-then-resumed one
    fresh = pack(FolderSource(image_folder), tmp_path / "fresh", samples_per_shard=2, image_size=8, skip_bad=True)
    for entry in fresh.shards:
        assert (tmp_path / "fresh" / entry.name).read_bytes() == (out / entry.name).read_bytes()


def test_resume_with_skipped_records_after_a_crash(tmp_path, image_folder):
    (image_folder / "cat" / "a.png").write_bytes(b"garbage")
    (image_folder / "emu" / "i.png").write_bytes(b"garbage")
    out = tmp_path / "out"
    reference = pack(FolderSource(image_folder), tmp_path / "ref", samples_per_shard=3, image_size=8, skip_bad=True)

    class Crash(FolderSource):
        def records(self):
            records = super().records()
            doomed = records[9]
            return [*records[:9], type(doomed)(doomed.key, 0, doomed.source_id, lambda: (_ for _ in ()).throw(KeyboardInterrupt()))]

    with pytest.raises(KeyboardInterrupt):
        pack(Crash(image_folder), out, samples_per_shard=3, image_size=8, skip_bad=True)
    assert Manifest.load(out).num_samples == 6 and len(read_skipped(out)) == 2
    manifest = pack(FolderSource(image_folder), out, samples_per_shard=3, image_size=8, skip_bad=True)
    assert manifest.model_dump(exclude={"created"}) == reference.model_dump(exclude={"created"})
    assert read_skipped(out) == read_skipped(tmp_path / "ref")


def test_pack_refuses_other_settings_and_overwrite_starts_over(tmp_path, image_folder):
    pack(FolderSource(image_folder), tmp_path, samples_per_shard=4, image_size=8)
    with pytest.raises(ManifestError, match="different dataset"):
        pack(FolderSource(image_folder), tmp_path, samples_per_shard=4, image_size=12)
    manifest = pack(FolderSource(image_folder), tmp_path, samples_per_shard=4, image_size=12, overwrite=True)
    assert manifest.dataset.image_size == 12 and manifest.num_samples == 11


def test_cli_pack_verify_inspect_schema(tmp_path):
    runner = CliRunner()
    out = tmp_path / "demo"
    args = ["pack", "bundled", "--out", str(out), "--samples-per-shard", "7", "--image-size", "8", "--crops-per-image", "2", "--workers", "2"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    manifest = open_manifest(out)
    photos = len(BundledSource().photos)
    assert manifest.num_samples == 2 * photos and all(s.num_samples == 7 for s in manifest.shards[:-1])
    assert f"{2 * photos} images" in result.output

    verify = runner.invoke(main, ["verify", str(out)])
    assert verify.exit_code == 0 and "OK" in verify.output

    summary = runner.invoke(main, ["inspect", str(out)])
    assert summary.exit_code == 0 and "bundled" in summary.output and f"{2 * photos} in {len(manifest.shards)} shards" in summary.output
    as_json = runner.invoke(main, ["inspect", str(out), "--json"])
    assert Manifest.model_validate(json.loads(as_json.output)) == manifest

    schema = runner.invoke(main, ["schema"])
    assert json.loads(schema.output) == Manifest.model_json_schema()

    shard = out / manifest.shards[1].name
    shard.write_bytes(shard.read_bytes()[:1000])
    broken = runner.invoke(main, ["verify", str(out)])
    assert broken.exit_code == 1 and manifest.shards[1].name in broken.output


def test_cli_errors_name_the_file(tmp_path):
    runner = CliRunner()
    (tmp_path / "empty").mkdir()
    result = runner.invoke(main, ["pack", str(tmp_path / "empty"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and "empty" in result.output and "no image files" in result.output
    missing = runner.invoke(main, ["verify", str(tmp_path / "o")])
    assert missing.exit_code == 1 and "no manifest" in missing.output and "manifest.json" in missing.output
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "manifest.json").write_text(json.dumps({"schema_version": 2}))
    version = runner.invoke(main, ["inspect", str(tmp_path / "v2")])
    assert version.exit_code == 1 and "schema_version 2" in version.output and "v2/manifest.json" in version.output


def test_truncated_shard_is_a_shard_error_naming_the_file(tmp_path, image_folder):
    manifest = pack(FolderSource(image_folder), tmp_path, samples_per_shard=4, image_size=8)
    shard = tmp_path / manifest.shards[0].name
    shard.write_bytes(shard.read_bytes()[:1500])
    with pytest.raises(ShardError, match=manifest.shards[0].name):
        list(iter_samples(tmp_path))
    with pytest.raises(SourceError):
        FolderSource(tmp_path / "nothing")
