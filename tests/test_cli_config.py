"""``--config FILE.yaml`` plus dotted overrides on every trainer, ``vq-pipeline run CONFIG KEY=VALUE``,
and ``vq-tok presets --show`` with the fields' documentation.

The trainers' loops are replaced by recorders: what is checked is what reaches them (the job the
command builds from the file, the flags and the ``--set`` pairs), not a training run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from vq_ar.cli import main as vq_ar
from vq_core.overrides import flatten, merge_overrides, parse_overrides
from vq_pipeline.cli import main as vq_pipeline
from vq_tokenizers.cli import main as vq_tok

ROOT = Path(__file__).resolve().parents[1]
TRAINERS = [(vq_tok, "train"), (vq_tok, "train-vqkd"), (vq_tok, "train-pixel-decoder"), (vq_tok, "fit-cluster"), (vq_ar, "train")]


@pytest.mark.parametrize(("group", "name"), TRAINERS, ids=[n for _, n in TRAINERS])
def test_every_trainer_takes_a_config_file(group: Any, name: str) -> None:
    assert "--config" in {o for p in group.commands[name].params for o in p.opts}


def test_dotted_pairs_nest_merge_and_round_trip() -> None:
    pairs = ["quantizer.codebook_size=64", "quantizer.kmeans_init=true", "levels=[8, 5]", "name=vq", "quantizer.codebook_size=128"]
    parsed = parse_overrides(pairs, "--set")
    assert parsed == {"quantizer": {"codebook_size": 128, "kmeans_init": True}, "levels": [8, 5], "name": "vq"}
    assert parse_overrides(flatten(parsed), "--set") == parsed
    assert merge_overrides({"quantizer": {"dim": 8, "codebook_size": 4}, "x": 1}, {"quantizer": {"codebook_size": 64}}) == {
        "quantizer": {"dim": 8, "codebook_size": 64}, "x": 1,
    }


def test_vq_tok_train_reads_the_file_and_flags_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vq_tokenizers.training.job as train_job

    seen: list[Any] = []
    monkeypatch.setattr(train_job, "train_tokenizer", lambda job: seen.append(job) or {"step": 0})
    config = tmp_path / "run.yaml"
    config.write_text(
        "family: vqgan\npreset: tiny\ndata: bundled\nsteps: 5\nloader-workers: 2\n"
        "model:\n  quantizer: {codebook_size: 64, kmeans_init: false}\nloss: {perceptual_weight: 0}\ntrain: {ema_decay: 0.5}\n"
    )
    args = ["train", "--config", str(config), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(vq_tok, [*args, "--steps", "7", "--set", "quantizer.codebook_size=128"])
    assert result.exit_code == 0, result.output
    job = seen[-1]
    assert (job.family, job.preset, job.data, job.num_workers) == ("vqgan", "tiny", "bundled", 2)
    assert job.model == {"quantizer": {"codebook_size": 128, "kmeans_init": False}}  # the flag beats the file, key by key
    assert job.loss == {"perceptual_weight": 0} and job.train["steps"] == 7 and job.train["ema_decay"] == 0.5

    config.write_text("family: vqgan\nstepz: 5\n")
    bad = CliRunner().invoke(vq_tok, [*args, "--data", "bundled"])
    assert bad.exit_code == 1 and bad.output.count("\n") == 1
    assert f"unknown key 'stepz' in --config file {config}" in bad.output and "steps" in bad.output


def test_vq_ar_train_reads_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vq_ar.training as training

    seen: dict[str, Any] = {}

    class Result:
        step, metrics, model, checkpoint = 1, {}, tmp_path / "model.safetensors", None

    def record(data: str, out: str, **kw: Any) -> Result:
        seen.update(data=data, out=out, **kw)
        return Result()

    monkeypatch.setattr(training, "train", record)
    config = tmp_path / "ar.yaml"
    config.write_text(f"data: {tmp_path}\nsize: B\nsteps: 3\nmodel: {{rope: 1d}}\n")
    result = CliRunner().invoke(vq_ar, ["train", "--config", str(config), "--out", str(tmp_path / "out"), "--set", "dropout=0.1"])
    assert result.exit_code == 0, result.output
    assert seen["size"] == "B" and seen["config"].steps == 3
    assert seen["model_overrides"] == {"rope": "1d", "dropout": 0.1}


def test_pipeline_run_and_check_take_dotted_overrides() -> None:
    demo = str(ROOT / "apps/vq-pipeline/configs/demo.yaml")
    checked = CliRunner().invoke(vq_pipeline, ["check", demo, "tokenizer.train.steps=7", "ar.size=B", "ray.num_workers=2"])
    assert checked.exit_code == 0, checked.output
    resolved = json.loads(checked.output)
    assert resolved["tokenizer"]["train"]["steps"] == 7 and resolved["ar"]["size"] == "B" and resolved["ray"]["num_workers"] == 2
    typo = CliRunner().invoke(vq_pipeline, ["check", demo, "tokenizer.trian.steps=7"])
    assert typo.exit_code == 1 and "tokenizer.trian" in typo.output
    inner = CliRunner().invoke(vq_pipeline, ["check", demo, "tokenizer.overrides.quantizer.codebook_sise=64"])
    assert inner.exit_code == 1 and "tokenizer.overrides.quantizer.codebook_sise: unknown field" in inner.output
    run_help = CliRunner().invoke(vq_pipeline, ["run", "--help"])
    assert "CONFIG [KEY=VALUE]..." in run_help.output


def test_presets_show_prints_resolved_fields_with_their_documentation() -> None:
    from vq_core.quantizers import VectorQuantizerConfig

    shown = json.loads(CliRunner().invoke(vq_tok, ["presets", "--show", "vqgan_f16_16384_dd2_aglwg075"]).output)
    assert shown["model"]["quantizer"]["codebook_size"] == 16384
    assert shown["docs"]["model.quantizer.codebook_size"] == VectorQuantizerConfig.model_fields["codebook_size"].description
    assert all(path.split(".")[0] in shown for path in shown["docs"])
