"""Stage markers: a finished stage is skipped, a changed one is redone from scratch, an interrupted one
resumes with its files, a failed one leaves no done-marker, one whose outputs are gone is redone, and
a marker's paths are relative so the run folder can move."""

from __future__ import annotations

from pathlib import Path

import pytest

from vq_pipeline.stages import MARKER, run_stage, settings_hash


def test_finished_stage_is_skipped_and_changed_settings_redo_it_from_scratch(tmp_path: Path) -> None:
    calls: list[str] = []

    def body(directory: Path, digest: str) -> dict:
        calls.append(digest)
        (directory / f"checkpoint-{len(calls)}").touch()
        return {"n": len(calls)}

    first = run_stage("s", tmp_path / "s", {"a": 1}, body)
    again = run_stage("s", tmp_path / "s", {"a": 1}, body)
    changed = run_stage("s", tmp_path / "s", {"a": 2}, body)
    assert (first.skipped, again.skipped, changed.skipped) == (False, True, False)
    assert again.outputs == {"n": 1} and changed.outputs == {"n": 2}
    assert calls == [settings_hash({"a": 1}), settings_hash({"a": 2})] and first.hash == again.hash != changed.hash
    assert sorted(p.name for p in (tmp_path / "s").glob("checkpoint-*")) == ["checkpoint-2"]  # old files gone


def test_interrupted_stage_keeps_its_files_unless_its_settings_changed(tmp_path: Path) -> None:
    def crash(directory: Path, digest: str) -> dict:
        (directory / "checkpoint").touch()
        raise RuntimeError("killed")

    def finish(directory: Path, digest: str) -> dict:
        return {"resumed": (directory / "checkpoint").exists()}

    with pytest.raises(RuntimeError):
        run_stage("s", tmp_path / "s", {"a": 1}, crash)
    assert not (tmp_path / "s" / MARKER).exists()
    assert run_stage("s", tmp_path / "s", {"a": 1}, finish).outputs == {"resumed": True}

    with pytest.raises(RuntimeError):
        run_stage("t", tmp_path / "t", {"a": 1}, crash)
    assert run_stage("t", tmp_path / "t", {"a": 2}, finish).outputs == {"resumed": False}


def _write_output(directory: Path, digest: str) -> dict:
    (directory / "model.bin").write_bytes(b"weights")
    return {"model": directory / "model.bin", "steps": 3}


def test_a_stage_whose_output_is_gone_is_redone_and_gets_a_new_identity(tmp_path: Path) -> None:
    first = run_stage("s", tmp_path / "run" / "s", {"a": 1}, _write_output)
    (tmp_path / "run" / "s" / "model.bin").unlink()
    redone = run_stage("s", tmp_path / "run" / "s", {"a": 1}, _write_output)
    assert not redone.skipped and redone.outputs["model"].is_file()
    assert redone.hash != first.hash  # so every stage that read the old output is redone too
    assert run_stage("s", tmp_path / "run" / "s", {"a": 1}, _write_output).skipped


def test_a_shard_set_missing_a_shard_is_not_complete(tmp_path: Path) -> None:
    import numpy as np

    from vq_core import DatasetInfo
    from vq_data import ShardSetWriter

    def pack(directory: Path, digest: str) -> dict:
        dataset = DatasetInfo(name="d", source="tests")
        with ShardSetWriter(directory / "set", kind="images", dataset=dataset, samples_per_shard=2, tool="t", tool_version="0") as writer:
            for i in range(4):
                writer.write({"__key__": f"k{i}", "npy": np.zeros(2), "cls": 0})
        return {"set": directory / "set"}

    first = run_stage("p", tmp_path / "p", {}, pack)
    shard = sorted((tmp_path / "p" / "set").glob("*.tar"))[-1]
    shard.write_bytes(shard.read_bytes()[:-512])  # truncated: the manifest's size no longer matches
    assert not run_stage("p", tmp_path / "p", {}, pack).skipped
    assert run_stage("p", tmp_path / "p", {}, pack).skipped and first.outputs["set"] == tmp_path / "p" / "set"


def test_marker_paths_are_relative_so_a_moved_run_folder_stays_complete(tmp_path: Path) -> None:
    import json
    import shutil

    run_stage("s", tmp_path / "run" / "s", {"a": 1}, _write_output, root=tmp_path / "run")
    marker = json.loads((tmp_path / "run" / "s" / MARKER).read_text())
    assert marker["outputs"]["model"] == "s/model.bin" and str(tmp_path) not in json.dumps(marker)
    shutil.move(tmp_path / "run", tmp_path / "moved")
    moved = run_stage("s", tmp_path / "moved" / "s", {"a": 1}, _write_output, root=tmp_path / "moved")
    assert moved.skipped and moved.outputs["model"] == tmp_path / "moved" / "s" / "model.bin"
