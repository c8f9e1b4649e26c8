"""The ``vq-core`` CLI reads real checkpoints and manifests and reports bad files clearly."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from vq_core import VectorQuantizerConfig, save_checkpoint
from vq_core.cli import main
from vq_core.manifest import manifest_json_schema


def test_schema_command_prints_the_committed_schema() -> None:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0 and json.loads(result.output) == json.loads(manifest_json_schema())


def test_checkpoint_command(tmp_path: Path) -> None:
    import torch

    path = tmp_path / "q.safetensors"
    config = VectorQuantizerConfig(codebook_size=16, dim=4)
    save_checkpoint(path, family="quantizer", config=config, model={"codebook": torch.zeros(16, 4)}, step=7)
    result = CliRunner().invoke(main, ["checkpoint", str(path)])
    assert result.exit_code == 0, result.output
    assert "family quantizer  step 7" in result.output and "parameters 64" in result.output
    (tmp_path / "bad.safetensors").write_bytes(b"not a checkpoint")
    bad = CliRunner().invoke(main, ["checkpoint", str(tmp_path / "bad.safetensors")])
    assert bad.exit_code != 0 and "bad.safetensors" in bad.output


def test_manifest_command_refuses_a_broken_manifest(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    result = CliRunner().invoke(main, ["manifest", str(tmp_path / "manifest.json")])
    assert result.exit_code != 0 and "manifest" in result.output
