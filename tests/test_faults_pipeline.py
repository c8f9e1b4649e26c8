"""Fault injection for ``vq-pipeline``: inputs changed under a finished run, outputs deleted, the run
folder moved, bad overrides.

One micro run (bundled photos, 2 steps per trainer, CPU) is made once; each test works on a copy.
A replaced ``tokenizer.checkpoint`` file re-runs every stage that depends on it (before, the report
mixed the old tokens with the new decoder), a grown image folder re-packs the data, a deleted output
redoes its stage and what follows, a moved run folder resumes with every stage skipped, and a bad
field inside an ``overrides`` dict is one ``Error:`` line from ``vq-pipeline check``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner, Result
from PIL import Image

from vq_core import Manifest
from vq_pipeline.cli import main
from vq_pipeline.config import PipelineConfig
from vq_pipeline.pipeline import Pipeline
from vq_tokenizers import build_tokenizer, get_preset, load_tokenizer, save_tokenizer

MICRO = {
    "seed": 0,
    "data": {"source": "bundled", "image_size": 32, "crops_per_image": 1, "samples_per_shard": 8},
    "tokenizer": {"family": "cvq", "preset": "tiny", "train": {"steps": 2, "batch_size": 4, "lr": 0.0004}},
    "tokenize": {"batch_size": 8, "samples_per_shard": 8},
    "ar": {"size": "nano", "train": {"steps": 2, "batch_size": 4, "lr": 0.001}},
    "sample": {"classes": [0], "per_class": 2, "cfg_scale": 1.75},
    "eval": {"max_images": 16, "grid_images": 2},
}
STAGES = ("data", "tokenizer", "tokens", "ar", "samples", "eval")


def _invoke(command: str, config: dict, directory: Path, out: Path | None = None) -> Result:
    path = directory / f"config-{len(list(directory.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return CliRunner().invoke(main, [command, str(path), *(["--out", str(out)] if out else [])])


def _run(config: dict, directory: Path, out: Path) -> dict[str, bool]:
    """Run the pipeline; which stages were skipped."""
    result = _invoke("run", config, directory, out)
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines() if line.split(None, 1)[0] in STAGES)
    return {name: lines[name].startswith("skipped") for name in STAGES}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("faults")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _run(MICRO, tmp, tmp / "base")
    finally:
        torch.set_num_threads(before)
    return tmp / "base"


@pytest.fixture
def copy(base: Path, tmp_path: Path) -> Path:
    torch.set_num_threads(1)
    return Path(shutil.copytree(base, tmp_path / "run"))


def test_moved_run_folder_resumes_with_every_stage_skipped(copy: Path, base: Path, tmp_path: Path) -> None:
    moved = Path(shutil.move(copy, tmp_path / "elsewhere" / "moved"))
    for marker in moved.glob("*/stage.json"):
        assert str(base) not in marker.read_text() and str(copy) not in marker.read_text(), marker
    assert all(_run(MICRO, tmp_path, moved).values())
    assert (moved / "report" / "report.md").is_file()


def test_deleted_output_redoes_its_stage_and_everything_after_it(copy: Path, tmp_path: Path) -> None:
    (copy / "ar" / "model.safetensors").unlink()
    skipped = _run(MICRO, tmp_path, copy)
    assert skipped == {"data": True, "tokenizer": True, "tokens": True, "ar": False, "samples": False, "eval": False}
    assert (copy / "ar" / "model.safetensors").is_file()


def test_replaced_tokenizer_checkpoint_reruns_what_depends_on_it(copy: Path, tmp_path: Path) -> None:
    given = tmp_path / "given.safetensors"
    shutil.copy(copy / "tokenizer" / "tokenizer.safetensors", given)
    config = {**MICRO, "tokenizer": {**MICRO["tokenizer"], "checkpoint": str(given)}}
    _run(config, tmp_path, copy)
    torch.manual_seed(1)  # same preset and config, other weights
    other = build_tokenizer("cvq", get_preset("tiny", "cvq").model)
    save_tokenizer(other, given)  # the same file name now holds another tokenizer
    skipped = _run(config, tmp_path, copy)
    assert skipped == {"data": True, "tokenizer": False, "tokens": False, "ar": False, "samples": False, "eval": False}
    identity = load_tokenizer(given).token_space_hash()
    assert Manifest.load(copy / "tokens" / "shards").tokenizer.config_hash == identity  # tokens of the new tokenizer
    assert f"| token space | {identity} |" in (copy / "report" / "report.md").read_text()  # and the report says so


def _photos(root: Path, count: int) -> None:
    rng = np.random.default_rng(count)
    for i in range(count):
        folder = root / f"class{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(folder / f"img{i}.png")


def test_grown_source_folder_repacks_the_data(tmp_path: Path) -> None:
    _photos(tmp_path / "photos", 4)
    config = PipelineConfig.from_dict({"data": {"source": "folder", "path": str(tmp_path / "photos"), "image_size": 16}})
    first = Pipeline(config, tmp_path / "run").data()
    assert first.outputs["train_images"] == 4 and Pipeline(config, tmp_path / "run").data().skipped
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(tmp_path / "photos" / "class1" / "new.png")
    grown = Pipeline(config, tmp_path / "run").data()
    assert not grown.skipped and grown.outputs["train_images"] == 5 and grown.hash != first.hash


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"tokenizer": {**MICRO["tokenizer"], "overrides": {"quantizer": {"codebook_size": 0}}}}, "tokenizer.overrides.quantizer.codebook_size"),
        ({"tokenizer": {**MICRO["tokenizer"], "overrides": {"quantiser": {}}}}, "tokenizer.overrides.quantiser"),
        ({"tokenizer": {**MICRO["tokenizer"], "train": {"overrides": {"warmup": 10}}}}, "tokenizer.train.overrides.warmup"),
        ({"ar": {"size": "nano", "overrides": {"rope": "3d"}}}, "ar.overrides.rope"),
        ({"ar": {"size": "nano", "train": {"overrides": {"precision": "fp8"}}}}, "ar.train.overrides.precision"),
    ],
)
def test_check_names_a_bad_field_inside_overrides_in_one_line(section: dict, field: str, tmp_path: Path) -> None:
    result = _invoke("check", {**MICRO, **section}, tmp_path)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {field}: ") and "config-0.yaml); fix" in lines[0], result.output
    run = _invoke("run", {**MICRO, **section}, tmp_path, tmp_path / "out")
    assert run.exit_code == 1 and not (tmp_path / "out" / "data").exists()  # refused before any stage ran


def test_missing_tokenizer_checkpoint_is_one_line_naming_the_field(tmp_path: Path) -> None:
    config = {**MICRO, "tokenizer": {**MICRO["tokenizer"], "checkpoint": str(tmp_path / "gone.safetensors")}}
    result = _invoke("run", config, tmp_path, tmp_path / "out")
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'gone.safetensors'} does not exist (tokenizer.checkpoint); fix the path in the pipeline config"


def test_stage_markers_record_relative_paths(base: Path) -> None:
    marker = json.loads((base / "tokens" / "stage.json").read_text())
    assert marker["outputs"]["shards"] == "tokens/shards" and marker["paths"] == ["shards"]
