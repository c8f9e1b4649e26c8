"""Hub-style tokenizer folders: save_pretrained / from_pretrained (directory or hub id from the HF cache) / push_to_hub."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from vq_core import CheckpointError
from vq_core.hub import PretrainedNotFoundError
from vq_tokenizers import VQGAN, FSQTokenizer, Tokenizer, build_tokenizer, get_preset, load_tokenizer

pytestmark = pytest.mark.usefixtures("single_thread")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _tiny(family: str = "vqgan") -> Tokenizer:
    torch.manual_seed(0)
    return build_tokenizer(family, get_preset("tiny", family).model).eval()


def put_in_hf_cache(hf_home: Path, repo_id: str, folder: Path) -> Path:
    """Lay ``folder`` out as huggingface_hub's cache does after a download: refs/main -> snapshots/<commit>/."""
    repo = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return repo


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    """HF_HOME in tmp_path, offline: nothing may reach the network."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf"


def test_save_pretrained_writes_checkpoint_config_and_card(tmp_path) -> None:
    model = _tiny()
    training = {"train_config": {"lr": 0.0001, "steps": 5}}
    out = model.save_pretrained(tmp_path / "tok", training_config=training, metrics={"step": 5.0, "l1": 0.25})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((out / "config.json").read_text())
    assert config["family"] == "vqgan" and config["config"] == model.config.model_dump(mode="json")
    assert config["config_hash"] == model.config.config_hash()
    with safe_open(out / "model.safetensors", framework="pt") as handle:  # a plain vq checkpoint
        assert handle.metadata()["family"] == "vqgan"
        assert set(handle.keys()) == set(model.state_dict())
    card = (out / "README.md").read_text()
    assert card.startswith("---\n") and "library_name: vq-tokenizers" in card
    assert '"lr": 0.0001' in card and "| l1 | 0.25 |" in card


def test_from_pretrained_directory_rebuilds_the_family(tmp_path) -> None:
    model = _tiny("fsq")
    model.save_pretrained(tmp_path / "fsq")
    loaded = Tokenizer.from_pretrained(tmp_path / "fsq")
    assert type(loaded) is FSQTokenizer and not loaded.training
    images = torch.rand(2, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded.encode(images), model.encode(images))
    assert torch.equal(FSQTokenizer.from_pretrained(tmp_path / "fsq").encode(images), model.encode(images))
    assert torch.equal(load_tokenizer(tmp_path / "fsq").encode(images), model.encode(images))  # --ckpt DIR too
    with pytest.raises(CheckpointError, match="not a VQGAN"):
        VQGAN.from_pretrained(tmp_path / "fsq")


def test_config_json_that_disagrees_with_the_weights_is_refused(tmp_path) -> None:
    _tiny().save_pretrained(tmp_path / "tok")
    meta = json.loads((tmp_path / "tok" / "config.json").read_text())
    (tmp_path / "tok" / "config.json").write_text(json.dumps({**meta, "config_hash": "ffff"}))
    with pytest.raises(CheckpointError, match="re-save the folder"):
        Tokenizer.from_pretrained(tmp_path / "tok")


def test_hub_id_loads_offline_from_the_hf_cache(tmp_path, offline_cache) -> None:
    model = _tiny()
    model.save_pretrained(tmp_path / "tok")
    put_in_hf_cache(offline_cache, "someone/tiny-vqgan", tmp_path / "tok")
    loaded = Tokenizer.from_pretrained("someone/tiny-vqgan")
    assert type(loaded) is VQGAN
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name


def test_hub_id_missing_from_the_cache_is_a_clear_error(offline_cache) -> None:
    with pytest.raises(PretrainedNotFoundError, match=r"not in the Hugging Face cache .*hf.hub.*hf download someone/absent"):
        Tokenizer.from_pretrained("someone/absent")
    with pytest.raises(PretrainedNotFoundError, match="neither a directory"):
        Tokenizer.from_pretrained("no-such-dir")


def test_pickle_weights_are_never_opened(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "foreign"
    folder.mkdir()
    torch.save(_tiny().state_dict(), folder / "pytorch_model.bin")
    (folder / "config.json").write_text("{}")

    def refuse(*args, **kwargs):
        raise AssertionError("from_pretrained unpickled a file")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    with pytest.raises(PretrainedNotFoundError, match="no model.safetensors"):
        Tokenizer.from_pretrained(folder)


def test_push_to_hub_uploads_the_saved_folder(tmp_path, monkeypatch) -> None:
    import huggingface_hub

    uploads = []

    def create_repo(self, repo_id, private=None, exist_ok=False, **kw):
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, repo_type, commit_message, revision=None, **kw):
        folder = Path(folder_path)
        uploads.append((repo_id, repo_type, sorted(p.name for p in folder.iterdir()), json.loads((folder / "config.json").read_text())))
        return "https://huggingface.co/me/tok/commit/abc"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    model = _tiny()
    assert model.push_to_hub("me/tok", metrics={"step": 1}) == "https://huggingface.co/me/tok/commit/abc"
    [(repo, kind, files, config)] = uploads
    assert (repo, kind, files) == ("me/tok", "model", ["README.md", "config.json", "model.safetensors"])
    assert config["family"] == "vqgan"
