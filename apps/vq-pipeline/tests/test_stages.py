"""Stage markers: a finished stage is skipped, a changed one is redone from scratch, an interrupted one
resumes with its files, and a failed one leaves no done-marker."""

from __future__ import annotations

from pathlib import Path

import pytest

from vq_pipeline.stages import MARKER, run_stage


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
    assert calls == [first.hash, changed.hash] and first.hash == again.hash != changed.hash
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
