"""Images -> token shards -> images: manifest identity, resumability, ten-crop, refusal of foreign tokens."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from vq_core import DatasetInfo, ManifestError, file_sha256
from vq_data import ShardSetWriter, iter_samples, open_manifest
from vq_tokenizers import build_tokenizer, get_preset, load_tokenizer, save_tokenizer
from vq_tokenizers import tokenize as tokenize_module
from vq_tokenizers.cli import main
from vq_tokenizers.images import center_crop
from vq_tokenizers.tokenize import decode_shards, reconstruct_image, tokenize_shards

pytestmark = pytest.mark.usefixtures("single_thread")


def _image_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="png")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image_shards(tmp_path_factory):
    """An image shard set as vq-data writes it: 10 labelled photos crops of 48x40 px, 4 per shard."""
    root = tmp_path_factory.mktemp("images")
    photos = [skdata.astronaut(), skdata.coffee(), skdata.chelsea()]
    with ShardSetWriter(
        root, kind="images", dataset=DatasetInfo(name="photos", source="skimage", num_classes=3), samples_per_shard=4,
        tool="test", tool_version="0",
    ) as writer:
        for i in range(10):
            crop = photos[i % 3][10 * i : 10 * i + 200, 5 * i : 5 * i + 240]
            array = np.asarray(Image.fromarray(crop).resize((48, 40)))
            writer.write({"__key__": f"img{i:03d}", "png": _image_bytes(array), "cls": i % 3, "json": {"photo": i % 3}})
    return root


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = build_tokenizer("vqgan", get_preset("tiny", "vqgan").model).eval()
    return save_tokenizer(model, tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


def test_tokenize_writes_contract_shards_that_decode_back(image_shards, checkpoint, tmp_path):
    manifest = tokenize_shards(checkpoint, image_shards, tmp_path / "tokens", samples_per_shard=3, batch_size=4)
    model = load_tokenizer(checkpoint)
    tok = manifest.tokenizer
    assert manifest.kind == "tokens" and manifest.complete and [s.num_samples for s in manifest.shards] == [3, 3, 3, 1]
    assert (tok.name, tok.codebook_size, tuple(tok.grid), tok.dtype, tok.image_size) == ("vqgan", 256, (8, 8), "int16", 32)
    assert tok.config_hash == model.token_space_hash() and tok.checkpoint_sha256 == file_sha256(checkpoint)
    assert manifest.dataset == open_manifest(image_shards).dataset
    samples = list(iter_samples(tmp_path / "tokens"))
    sources = list(iter_samples(image_shards))
    assert [s["__key__"] for s in samples] == [s["__key__"] for s in sources]
    for sample, source in zip(samples, sources):
        assert sample["tokens.npy"].dtype == np.int16 and sample["tokens.npy"].shape == (8, 8)
        assert sample["cls"] == source["cls"] and sample["json"]["crop"] == "center"
        pixels = center_crop(Image.open(io.BytesIO(source["png"])).convert("RGB"), 32)
        assert np.array_equal(sample["tokens.npy"], model.encode(pixels[None])[0].numpy())

    written = decode_shards(tmp_path / "tokens", checkpoint, tmp_path / "decoded", limit=4)
    assert [p.name for p in written] == ["img000.png", "img001.png", "img002.png", "img003.png"]
    decoded = np.asarray(Image.open(written[1]), dtype=np.float32) / 127.5 - 1
    expected = model.decode(torch.from_numpy(samples[1]["tokens.npy"]).long()[None])[0].clamp(-1, 1)
    np.testing.assert_allclose(decoded, expected.permute(1, 2, 0).numpy(), atol=1 / 127.5 + 1e-6)


def test_a_killed_tokenize_job_resumes_to_identical_shards(image_shards, checkpoint, tmp_path, monkeypatch):
    tokenize_shards(checkpoint, image_shards, tmp_path / "straight", samples_per_shard=3, batch_size=2)
    real = tokenize_module.encode_records
    calls = {"n": 0}

    def dies_on_fourth_batch(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tokenize_module, "encode_records", dies_on_fourth_batch)
    with pytest.raises(KeyboardInterrupt):
        tokenize_shards(checkpoint, image_shards, tmp_path / "crashed", samples_per_shard=3, batch_size=2)
    assert not open_manifest(tmp_path / "crashed", require_complete=False).complete
    seen = []
    monkeypatch.setattr(tokenize_module, "encode_records", lambda m, records, **kw: seen.extend(records) or real(m, records, **kw))
    tokenize_shards(checkpoint, image_shards, tmp_path / "crashed", samples_per_shard=3, batch_size=2)
    assert seen[0].key == "img006"  # the two whole shards written before the crash were skipped
    for shard in open_manifest(tmp_path / "straight").shards:
        assert (tmp_path / "crashed" / shard.name).read_bytes() == (tmp_path / "straight" / shard.name).read_bytes()


def test_ten_crop_tokens_and_int32_for_large_codebooks(image_shards, tmp_path):
    torch.manual_seed(0)
    config = {**get_preset("tiny", "fsq").model, "quantizer": {"levels": (8, 8, 8, 8, 8, 2)}}  # 65536 codes
    model = build_tokenizer("fsq", config).eval()
    ckpt = save_tokenizer(model, tmp_path / "fsq.safetensors")
    manifest = tokenize_shards(ckpt, image_shards, tmp_path / "tokens", samples_per_shard=8, ten_crop=True)
    assert manifest.tokenizer.dtype == "int32" and manifest.tokenizer.ten_crop
    first = next(iter(iter_samples(tmp_path / "tokens")))
    assert first["tokens.npy"].shape == (10, 8, 8) and first["tokens.npy"].dtype == np.int32
    assert first["json"]["crop"] == "ten_crop"
    assert len(decode_shards(tmp_path / "tokens", ckpt, tmp_path / "out", limit=2)) == 2


def test_decode_refuses_tokens_of_another_tokenizer(image_shards, checkpoint, tmp_path):
    tokenize_shards(checkpoint, image_shards, tmp_path / "tokens", samples_per_shard=5)
    torch.manual_seed(0)
    other = build_tokenizer("vqgan", {**get_preset("tiny", "vqgan").model, "quantizer": {"codebook_size": 128, "dim": 16}})
    other_ckpt = save_tokenizer(other, tmp_path / "other.safetensors")
    with pytest.raises(ManifestError, match="has codebook 128 but manifest .*manifest.json says 256"):
        decode_shards(tmp_path / "tokens", other_ckpt, tmp_path / "out")


def test_folder_source_reconstruct_and_cli(checkpoint, tmp_path):
    folder = tmp_path / "folder" / "cats"
    folder.mkdir(parents=True)
    Image.fromarray(skdata.chelsea()).save(folder / "chelsea.v1.png")
    Image.fromarray(skdata.coffee()).save(folder / "coffee.jpg")
    runner = CliRunner()
    result = runner.invoke(main, ["tokenize", str(tmp_path / "folder"), "--ckpt", str(checkpoint), "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    samples = list(iter_samples(tmp_path / "t"))
    assert [s["__key__"] for s in samples] == ["cats/chelsea_v1_png", "cats/coffee_jpg"]
    assert [s["cls"] for s in samples] == [0, 0] and samples[0]["json"]["source"] == "cats/chelsea.v1.png"
    result = runner.invoke(main, ["decode", str(tmp_path / "t"), "--ckpt", str(checkpoint), "--out", str(tmp_path / "d")])
    assert result.exit_code == 0 and (tmp_path / "d" / "cats" / "coffee_jpg.png").is_file()

    stats = reconstruct_image(folder / "coffee.jpg", checkpoint, tmp_path / "side.png")
    side = Image.open(tmp_path / "side.png")
    assert side.size == (64, 32) and stats["tokens"] == 64 and stats["psnr"] > 0
    result = runner.invoke(main, ["reconstruct", str(folder / "coffee.jpg"), "--ckpt", str(checkpoint), "--out", str(tmp_path / "r.png")])
    assert result.exit_code == 0 and "psnr" in result.output
