"""VQ-KD: shapes and config checks, distillation lowers the cosine loss, checkpoints, resume, NaN stop."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from vq_core import ConfigError, TrainSession, launch, load_checkpoint
from vq_tokenizers import VQKD, VQKDConfig, load_tokenizer, save_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.teachers import load_teacher
from vq_tokenizers.training import ImageBatches
from vq_tokenizers.vqkd import cosine_distance_loss
from vq_tokenizers.training.vqkd import (
    VQKD_PRESETS,
    NonFiniteLossError,
    VQKDTrainConfig,
    VQKDTrainer,
    train_vqkd,
    vqkd_config_for,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def teacher():
    return load_teacher("random-clip:tiny")


def _tiny(teacher) -> VQKD:
    torch.manual_seed(0)
    return VQKD(vqkd_config_for("tiny", teacher))


def test_paper_preset_matches_beit_v2() -> None:
    config = VQKDConfig.from_dict(VQKD_PRESETS["vqkd_clip_8192"].model)
    enc, dec, q = config.encoder, config.decoder, config.quantizer
    assert (enc.image_size, enc.patch_size, enc.dim, enc.depth, enc.heads) == (224, 16, 768, 12, 12)
    assert (dec.depth, dec.dim, dec.patch_size, dec.in_channels, dec.image_size) == (1, 768, 1, 32, 14)
    assert (q.codebook_size, q.dim, q.distance, config.target_dim) == (8192, 32, "cosine", 512)
    assert all(VQKDConfig.from_dict(p.model).quantizer.kmeans_init for p in VQKD_PRESETS.values())
    assert (q.ema, q.ema_decay) == (True, 0.99)  # BEiT v2's norm-EMA codebook
    with torch.device("meta"):
        model = VQKD(config)
    assert model.grid == (14, 14)
    encoder_params = sum(p.numel() for p in model.encoder.parameters())
    assert 85.0e6 < encoder_params < 86.5e6  # ViT-B/16 without a classifier head: 85.8M


def test_inconsistent_decoder_is_refused() -> None:
    data = {**VQKD_PRESETS["tiny"].model, "decoder": {"image_size": 8, "patch_size": 1, "in_channels": 32}}
    with pytest.raises(ConfigError, match="decoder.image_size 8 != encoder grid 4"):
        VQKDConfig.from_dict(data)


def test_encode_shapes_batching_and_no_pixel_decode(teacher) -> None:
    model = _tiny(teacher).eval()
    images = torch.rand(5, 3, 32, 32) * 2 - 1
    tokens = model.encode(images)
    assert tokens.shape == (5, 4, 4) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < model.codebook_size
    assert torch.equal(torch.cat([model.encode(images[i : i + 1]) for i in range(5)]), tokens)
    assert model.decode_features(tokens).shape == (5, 16, teacher.dim)
    assert not model.can_decode
    with pytest.raises(NotImplementedError, match="train-pixel-decoder"):
        model.decode(tokens)
    with pytest.raises(ValueError, match="multiples of 8 .*36x36"):
        model.encode(torch.zeros(1, 3, 36, 36))


def test_cosine_distance_loss_against_numpy() -> None:
    a, b = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    an, bn = a.numpy(), b.numpy()
    cos = (an * bn).sum(-1) / (((an**2).sum(-1) ** 0.5) * ((bn**2).sum(-1) ** 0.5))
    assert abs(float(cosine_distance_loss(a, b)) - float((1 - cos).mean())) < 1e-6


@torch.no_grad()
def _eval_loss(model: VQKD, teacher, images: torch.Tensor) -> float:
    model.eval()
    loss = cosine_distance_loss(model.decode_features(model.encode(images)), teacher.features(images))
    model.train()
    return float(loss)


def test_distillation_lowers_the_cosine_loss_and_exports(teacher, teacher_photos, tmp_path) -> None:
    model = _tiny(teacher)
    config = VQKDTrainConfig(steps=30, batch_size=8, lr=1e-3, warmup_steps=5, log_every=10, ckpt_every=15, seed=0)
    data = ImageBatches(teacher_photos, image_size=32, batch_size=8, seed=0)
    fixed = next(iter(data))
    before = _eval_loss(model, teacher, fixed)
    metrics = VQKDTrainer(model, teacher, data, config, tmp_path).train()
    after = _eval_loss(model, teacher, fixed)
    assert after < 0.6 * before, (before, after)
    assert metrics["step"] == 30 and metrics["codebook_usage"] > 0
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [10, 20, 30]
    exported = load_tokenizer(tmp_path / "tokenizer.safetensors")
    assert isinstance(exported, VQKD) and exported.token_space_hash() == model.eval().token_space_hash()
    assert torch.equal(exported.encode(fixed), model.encode(fixed))
    assert load_checkpoint(tmp_path / "tokenizer.safetensors").state["teacher"]["source"] == "random-clip:tiny"


def test_checkpoint_round_trip_and_token_space_hash(teacher, tmp_path) -> None:
    model = _tiny(teacher).eval()
    path = save_tokenizer(model, tmp_path / "vqkd.safetensors")
    loaded = load_tokenizer(path)
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    assert torch.equal(loaded.encode(images), model.encode(images))
    assert loaded.token_space_hash() == model.token_space_hash()
    with torch.no_grad():  # a different codebook is a different token space even with the same config
        loaded.quantizer.codebook.mul_(-1)
    assert loaded.token_space_hash() != model.token_space_hash()


def test_resume_continues_and_refuses_another_teacher(teacher, teacher_photos, tmp_path) -> None:
    def trainer(steps: int, t=teacher) -> VQKDTrainer:
        config = VQKDTrainConfig(steps=steps, batch_size=8, log_every=2, ckpt_every=2)
        return VQKDTrainer(_tiny(teacher), t, ImageBatches(teacher_photos, image_size=32, batch_size=8), config, tmp_path)

    trainer(4).train()
    with pytest.raises(FileExistsError, match="resume"):
        trainer(6).train()
    resumed = trainer(6)
    assert resumed.resume() and resumed.step == 4
    assert resumed.train()["step"] == 6
    other = load_teacher("random-clip:tiny", image_size=64)  # same width, another input size: another teacher
    with pytest.raises(Exception, match="teacher"):
        trainer(8, other).resume()


def test_non_finite_loss_stops_before_the_update(teacher, tmp_path) -> None:
    model = _tiny(teacher)
    before = {k: v.clone() for k, v in model.state_dict().items() if "encoder" in k}
    bad = [torch.full((8, 3, 32, 32), float("nan"))]
    trainer = VQKDTrainer(model, teacher, bad, VQKDTrainConfig(steps=1, batch_size=8), tmp_path)
    with pytest.raises(NonFiniteLossError, match="step 0"):
        trainer.train()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_teacher_width_mismatch_is_refused(teacher) -> None:
    model = VQKD(VQKDConfig.from_dict({**VQKD_PRESETS["tiny"].model, "target_dim": 48}))
    with pytest.raises(ValueError, match="48"):
        VQKDTrainer(model, teacher, [], VQKDTrainConfig(), "unused")


def test_cli_train_vqkd(teacher_photos, tmp_path) -> None:
    result = CliRunner().invoke(
        main,
        ["train-vqkd", "--teacher", "random-clip:tiny", "--preset", "tiny", "--data", str(teacher_photos),
         "--out", str(tmp_path / "run"), "--steps", "4", "--batch-size", "4", "--set", "quantizer.codebook_size=64"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["step"] == 4
    model = load_tokenizer(tmp_path / "run" / "tokenizer.safetensors")
    assert model.codebook_size == 64 and model.family == "vqkd"
    missing = f"clip:{tmp_path / 'missing'}"
    args = ["train-vqkd", "--teacher", missing, "--data", str(teacher_photos), "--out", str(tmp_path / "x")]
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code != 0 and "missing" in bad.output


def test_train_vqkd_runs_as_a_launch_loop(teacher_photos, tmp_path) -> None:
    """``train_vqkd(config, session)`` is what vq_core.launch (and Ray Train) call; the codebook starts from
    k-means of the first batch's codes (a unit-norm codebook that is no longer the random init)."""
    job = {"teacher": "random-clip:tiny", "data": str(teacher_photos), "out": str(tmp_path), "train": {"steps": 2, "batch_size": 8}}
    torch.manual_seed(0)
    initial = VQKD(vqkd_config_for("tiny", load_teacher("random-clip:tiny"))).quantizer.codebook.clone()
    metrics = launch(train_vqkd, job)
    assert metrics["step"] == 2
    model = load_tokenizer(tmp_path / "tokenizer.safetensors")
    codebook = model.quantizer.codebook
    assert bool(model.quantizer.initialized) and not torch.allclose(codebook, initial)
    torch.testing.assert_close(codebook.norm(dim=1), torch.ones(len(codebook)))
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        train_vqkd({**job, "out": str(tmp_path / "x")}, TrainSession(world_size=3))


def test_cli_runs_as_a_module_with_the_teacher_commands() -> None:
    """``python -m vq_tokenizers.cli`` (what torchrun runs) registers the command modules without an import cycle."""
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "vq_tokenizers.cli", "--help"], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in ("train-vqkd", "fit-cluster", "train-pixel-decoder"))


VQKD_DDP_SCRIPT = """
import json, sys, torch, torch.distributed as dist
torch.set_num_threads(1)
from vq_tokenizers.training.job import init_distributed_from_env
init_distributed_from_env()  # the process group torchrun's variables describe
rank, world = dist.get_rank(), dist.get_world_size()
from vq_tokenizers import VQKD
from vq_tokenizers.teachers import load_teacher
from vq_tokenizers.training import ImageBatches
from vq_tokenizers.training.vqkd import VQKDTrainConfig, VQKDTrainer, vqkd_config_for
teacher = load_teacher("random-clip:tiny")
torch.manual_seed(rank)  # different weights on each rank: all must start from rank 0's
model = VQKD(vqkd_config_for("tiny", teacher))
data = ImageBatches(sys.argv[1], image_size=32, batch_size=4, rank=rank, world_size=world)
VQKDTrainer(model, teacher, data, VQKDTrainConfig(steps=3, batch_size=8, log_every=1, ckpt_every=2), sys.argv[2]).train()
flat = torch.cat([v.detach().float().flatten() for v in model.state_dict().values()])  # weights, codebook, EMA stats
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
if rank == 0:
    json.dump({"max_diff": float((gathered[0] - gathered[1]).abs().max()), "initialized": bool(model.quantizer.initialized)},
              open(sys.argv[3], "w"))
dist.barrier()
dist.destroy_process_group()
"""


def test_ddp_ranks_stay_in_sync_and_only_rank_zero_writes(teacher_photos, tmp_path) -> None:
    """Two gloo ranks: DDP syncs the student, the quantizer syncs its k-means init and EMA codebook."""
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(VQKD_DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(teacher_photos), str(tmp_path / "out"), str(tmp_path / "result.json")],
            env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert json.loads((tmp_path / "result.json").read_text()) == {"max_diff": 0.0, "initialized": True}
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]  # one writer, not one per rank
    assert sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == ["step_00000002.safetensors", "step_00000003.safetensors", "tokenizer.safetensors"]
