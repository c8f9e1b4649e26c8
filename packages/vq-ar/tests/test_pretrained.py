"""Hub-style AR folders: save_pretrained (card from the run) / LoadedAR.from_pretrained (dir or cached hub id) / push_to_hub."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vq_ar import LoadedAR, TrainConfig, load_ar, train
from vq_ar.sampling import generate
from vq_core.hub import PretrainedNotFoundError

COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


@pytest.fixture
def trained(tmp_path: Path, write_token_shards) -> Path:  # noqa: ANN001
    tokens = np.random.default_rng(0).integers(0, 32, size=(8, 4, 4))
    data = write_token_shards(tmp_path / "tokens", tokens, np.arange(8) % 4, codebook_size=32, num_classes=4)
    train(data, tmp_path / "run", size="nano", config=TrainConfig(steps=3, batch_size=4, log_every=1, tensorboard=False))
    return tmp_path / "run"


def test_save_pretrained_card_holds_the_training_config_and_last_metrics(trained: Path, tmp_path: Path) -> None:
    loaded = load_ar(trained / "model.safetensors")
    folder = loaded.save_pretrained(tmp_path / "ar", run_dir=trained)
    card = (folder / "README.md").read_text()
    last = json.loads((trained / "metrics.jsonl").read_text().splitlines()[-1])
    assert "library_name: vq-ar" in card and "trained for 3 steps" in card
    assert f"| loss | {last['loss']:.6g} |" in card
    block = card.split("## Training config", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    assert json.loads(block) == json.loads((trained / "train.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == "ar" and config["config"] == loaded.config.model_dump(mode="json")


def test_hub_id_round_trip_from_the_hf_cache(trained: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = load_ar(trained / "model.safetensors")
    loaded.save_pretrained(tmp_path / "ar")
    repo = tmp_path / "hf" / "hub" / "models--someone--tiny-ar"
    shutil.copytree(tmp_path / "ar", repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)

    again = LoadedAR.from_pretrained("someone/tiny-ar")
    assert again.tokenizer == loaded.tokenizer and again.dataset == loaded.dataset and again.step == 3
    labels = torch.arange(4)
    assert torch.equal(generate(again.model, labels, top_k=1), generate(loaded.model, labels, top_k=1))
    assert torch.equal(load_ar(tmp_path / "ar").model.tok_embeddings.weight, loaded.model.tok_embeddings.weight)
    with pytest.raises(PretrainedNotFoundError, match="not in the Hugging Face cache"):
        LoadedAR.from_pretrained("someone/absent")


def test_push_to_hub_uploads_the_saved_folder(trained: Path, monkeypatch) -> None:
    import huggingface_hub

    seen = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo",
                        lambda self, repo_id, **kw: huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}"))

    def upload_folder(self, *, repo_id, folder_path, **kw):
        seen[repo_id] = sorted(p.name for p in Path(folder_path).iterdir())
        return "commit-url"

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert load_ar(trained / "model.safetensors").push_to_hub("me/ar", run_dir=trained) == "commit-url"
    assert seen == {"me/ar": ["README.md", "config.json", "model.safetensors"]}
