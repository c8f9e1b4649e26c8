"""Token shards <-> LlamaGen's extract_codes_c2i layout: round trip, and the export read the way LlamaGen reads it.

``llamagen_getitem`` below is written from LlamaGen's ``dataset/imagenet.py`` (``build_imagenet_code`` +
``CustomDataset.__getitem__``) and ``autoregressive/train/train_c2i.py`` (``z_indices = x.reshape(B, -1)``),
not from this project's code.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from vq_core import DatasetInfo
from vq_data import ShardSetWriter, iter_samples, open_manifest
from vq_tokenizers import build_tokenizer, get_preset, save_tokenizer, tokenize_shards, tokenizer_info
from vq_tokenizers.cli import main

pytestmark = pytest.mark.usefixtures("single_thread")


def llamagen_getitem(code_path: str, image_size: int, idx: int, generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One (z_indices, c_indices) row as LlamaGen's c2i training sees it (batch of one)."""
    feature_dir = f"{code_path}/imagenet{image_size}_codes"
    label_dir = f"{code_path}/imagenet{image_size}_labels"
    assert os.path.exists(feature_dir) and os.path.exists(label_dir)
    features = np.load(os.path.join(feature_dir, f"{idx}.npy"))
    if "flip" in feature_dir:
        aug_idx = torch.randint(low=0, high=features.shape[1], size=(1,), generator=generator).item()
        features = features[:, aug_idx]
    labels = np.load(os.path.join(label_dir, f"{idx}.npy"))
    x, y = torch.from_numpy(features)[None], torch.from_numpy(labels)[None]  # DataLoader batch of 1
    return x.reshape(x.shape[0], -1).numpy(), y.reshape(-1).numpy()


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_tokenizer("vqgan", get_preset("tiny", "vqgan").model).eval()
    return save_tokenizer(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def image_shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]
    with ShardSetWriter(
        root, kind="images", dataset=DatasetInfo(name="photos", source="skimage", num_classes=3), samples_per_shard=3,
        tool="test", tool_version="0",
    ) as writer:
        for i in range(7):
            crop = photos[i % 3][12 * i : 12 * i + 200, 6 * i : 6 * i + 200]
            writer.write({"__key__": f"img{i:03d}", "png": _png(np.asarray(Image.fromarray(crop).resize((40, 40)))),
                          "cls": (2 * i) % 3, "json": {"photo": i % 3}})
    return root


@pytest.fixture(scope="module", params=[False, True], ids=["center", "ten_crop"])
def token_shards(request, image_shards, checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("tokens")
    tokenize_shards(checkpoint, image_shards, out, samples_per_shard=4, batch_size=8, ten_crop=request.param)
    return out


def _samples(directory) -> list[dict]:
    return list(iter_samples(directory))


def test_export_is_read_by_llamagens_dataset_and_import_round_trips(token_shards, checkpoint, tmp_path) -> None:
    code_path = tmp_path / "imagenet_code_c2i_flip_ten_crop"
    result = CliRunner().invoke(main, ["export-llamagen", str(token_shards), "--out", str(code_path)])
    assert result.exit_code == 0, result.output
    original = _samples(token_shards)
    manifest = open_manifest(token_shards)
    size, length = manifest.tokenizer.image_size, int(np.prod(manifest.tokenizer.grid))
    views = 10 if manifest.tokenizer.ten_crop else 1
    codes = np.load(code_path / f"imagenet{size}_codes" / "0.npy")
    assert codes.dtype == np.int64 and codes.shape == (1, views, length)  # extract_codes_c2i's (1, num_aug, L)
    assert np.load(code_path / f"imagenet{size}_labels" / "0.npy").shape == (1,)

    generator = torch.Generator().manual_seed(0)
    for index, sample in enumerate(original):
        z, c = llamagen_getitem(str(code_path), size, index, generator)
        assert z.shape == (1, length) and c.tolist() == [sample["cls"]]
        sample_views = sample["tokens.npy"].reshape(-1, length)
        assert any(np.array_equal(z[0], v) for v in sample_views)

    out = tmp_path / "back"
    result = CliRunner().invoke(main, ["import-llamagen", str(code_path), "--out", str(out), "--tokenizer", str(checkpoint),
                                       "--samples-per-shard", "4"])
    assert result.exit_code == 0, result.output
    back = open_manifest(out)
    assert back.tokenizer == manifest.tokenizer and back.dataset == manifest.dataset
    assert [s.num_samples for s in back.shards] == [s.num_samples for s in manifest.shards]
    for a, b in zip(original, _samples(out), strict=True):
        assert (a["__key__"], a["cls"], a["json"]) == (b["__key__"], b["cls"], b["json"])
        assert a["tokens.npy"].dtype == b["tokens.npy"].dtype and np.array_equal(a["tokens.npy"], b["tokens.npy"])


def test_llamagens_own_codes_import_with_the_tokenizers_identity(checkpoint, tmp_path) -> None:
    """Codes as extract_codes_c2i writes them (image + flip, int64, no vq records) for a 32-px tokenizer."""
    from vq_tokenizers import load_tokenizer

    rng = np.random.default_rng(0)
    code_path = tmp_path / "llamagen_codes"
    (code_path / "imagenet32_codes").mkdir(parents=True)
    (code_path / "imagenet32_labels").mkdir()
    written = []
    for i in range(5):
        codes, label = rng.integers(0, 256, size=(1, 2, 64)), rng.integers(0, 1000, size=(1,))
        np.save(code_path / "imagenet32_codes" / f"{i}.npy", codes)
        np.save(code_path / "imagenet32_labels" / f"{i}.npy", label)
        written.append((codes, label))
    out = tmp_path / "shards"
    result = CliRunner().invoke(main, ["import-llamagen", str(code_path), "--out", str(out), "--tokenizer", str(checkpoint)])
    assert result.exit_code == 0, result.output
    manifest = open_manifest(out)
    assert manifest.tokenizer == tokenizer_info(load_tokenizer(checkpoint), checkpoint, image_size=32)
    samples = _samples(out)
    assert [s["__key__"] for s in samples] == [f"{i:08d}" for i in range(5)]
    for s, (codes, label) in zip(samples, written):
        assert s["tokens.npy"].shape == (2, 8, 8) and np.array_equal(s["tokens.npy"].reshape(1, 2, 64), codes)
        assert s["cls"] == int(label[0]) and s["json"] == {"llamagen_index": samples.index(s), "views": 2}


def test_import_refuses_codes_outside_the_codebook_and_export_names_the_flip_rule(checkpoint, token_shards, tmp_path) -> None:
    code_path = tmp_path / "codes"
    (code_path / "imagenet32_codes").mkdir(parents=True)
    (code_path / "imagenet32_labels").mkdir()
    np.save(code_path / "imagenet32_codes" / "0.npy", np.full((1, 2, 64), 300))
    np.save(code_path / "imagenet32_labels" / "0.npy", np.zeros(1, dtype=np.int64))
    result = CliRunner().invoke(main, ["import-llamagen", str(code_path), "--out", str(tmp_path / "o"), "--tokenizer", str(checkpoint)])
    assert result.exit_code == 1 and result.output.startswith("Error:") and "has 256 codes" in result.output
    assert "Traceback" not in result.output
    if open_manifest(token_shards).tokenizer.ten_crop:
        result = CliRunner().invoke(main, ["export-llamagen", str(token_shards), "--out", str(tmp_path / "plain")])
        assert result.exit_code == 1 and "contains 'flip'" in result.output
