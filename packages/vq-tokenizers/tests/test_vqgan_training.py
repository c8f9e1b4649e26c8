"""The training loop: learning, exact resume, checkpoint contents, NaN handling, data stream, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from skimage import data as skdata

from vq_core import load_checkpoint
from vq_tokenizers import TrainJob, build_run, load_tokenizer, train_tokenizer
from vq_tokenizers.cli import main
from vq_tokenizers.training import ImageBatches, NonFiniteLossError, Trainer, latest_checkpoint

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """48 crops of four scikit-image photos, 40 px, in two class folders."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i, name in enumerate(["astronaut", "coffee", "chelsea", "rocket"]):
        image = getattr(skdata, name)()
        folder = root / ("ab"[i % 2])
        folder.mkdir(exist_ok=True)
        for j in range(12):
            y, x = rng.integers(0, image.shape[0] - 120), rng.integers(0, image.shape[1] - 120)
            Image.fromarray(image[y : y + 120, x : x + 120]).resize((40, 40)).save(folder / f"{name}_{j}.png")
    return root


def _run(family="vqgan", **train):
    job = TrainJob(family=family, preset="tiny", data="unused", out="unused", train={"batch_size": 8, **train})
    return build_run(job)


def _trainer(photos, out, *, family="vqgan", perturb=False, **train):
    model, loss, config = _run(family, **train)  # seeded by config.seed
    if perturb:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param))
    data = ImageBatches(photos, image_size=32, batch_size=config.micro_batch_size(), seed=config.seed)
    return Trainer(model, data, config, out, loss=loss)


@torch.no_grad()
def _rec_error(model, batch):
    model.eval()
    error = (model(batch).recon - batch).abs().mean().item()
    model.train()
    return error


def test_tiny_training_lowers_reconstruction_error(photos, tmp_path):
    trainer = _trainer(photos, tmp_path, steps=30, disc_start=1000, log_every=10, ckpt_every=30, sample_every=30)
    batch = next(iter(ImageBatches(photos, image_size=32, batch_size=16, seed=123)))
    before = _rec_error(trainer.model, batch)
    metrics = trainer.train()
    after = _rec_error(trainer.model, batch)
    assert after < 0.7 * before, (before, after)
    assert metrics["step"] == 30 and 0 < metrics["codebook_usage"] <= 1 and metrics["perplexity"] >= 1
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [10, 20, 30] and lines[-1]["l1"] < lines[0]["l1"]
    assert (tmp_path / "samples" / "step_00000030.png").is_file()
    exported = load_tokenizer(tmp_path / "tokenizer.safetensors")
    assert _rec_error(exported, batch) == pytest.approx(after, rel=1e-5)


def _final_state(trainer):
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_resume_reproduces_an_uninterrupted_run_exactly(photos, tmp_path):
    """GAN from step 2, EMA, grad accumulation: 6 steps straight == 3 steps, a new process, 3 more."""
    settings = dict(steps=6, disc_start=2, ema_decay=0.9, grad_accum=2, ckpt_every=3, log_every=3, sample_every=100)
    torch.use_deterministic_algorithms(True)
    try:
        straight = _trainer(photos, tmp_path / "a", **settings)
        straight.train()
        first = _trainer(photos, tmp_path / "b", **{**settings, "steps": 3})
        first.train()
        resumed = _trainer(photos, tmp_path / "b", perturb=True, **settings)  # other weights: resume overwrites
        assert resumed.resume() and resumed.step == 3
        resumed.train()
    finally:
        torch.use_deterministic_algorithms(False)
    for key, value in _final_state(straight).items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in straight.discriminator.state_dict().items():
        assert torch.equal(value, resumed.discriminator.state_dict()[key]), key
    ema_a, ema_b = straight.ema.state_dict(), resumed.ema.state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    logged = [json.loads((tmp_path / run / "metrics.jsonl").read_text().splitlines()[-1]) for run in "ab"]
    for metrics in logged:
        del metrics["seconds_per_step"]
    assert logged[0] == logged[1] and "d" in logged[0]

def test_checkpoint_holds_everything_a_resume_needs(photos, tmp_path):
    trainer = _trainer(photos, tmp_path, steps=2, disc_start=0, ema_decay=0.5, ckpt_every=1, keep_checkpoints=1, log_every=1)
    trainer.train()
    assert [p.name for p in tmp_path.glob("step_*.safetensors")] == ["step_00000002.safetensors"]  # older ones pruned
    ckpt = load_checkpoint(latest_checkpoint(tmp_path), family="vqgan")
    assert ckpt.step == 2 and ckpt.config == trainer.model.config.model_dump(mode="json")
    assert set(ckpt.state) >= {"optimizer", "disc_optimizer", "discriminator", "ema", "rng", "loss_config", "train_config"}
    assert ckpt.state["optimizer"]["state"] and ckpt.state["disc_optimizer"]["state"]  # both optimizers stepped
    # the exported tokenizer carries the EMA weights, not the raw ones
    exported = load_checkpoint(tmp_path / "tokenizer.safetensors")
    assert all(torch.equal(exported.model[k], v.to(exported.model[k].dtype)) for k, v in ckpt.state["ema"].items())


def test_existing_checkpoints_without_resume_are_refused(photos, tmp_path):
    _trainer(photos, tmp_path, steps=1, ckpt_every=1).train()
    with pytest.raises(FileExistsError, match="--resume"):
        _trainer(photos, tmp_path, steps=2).train()


def test_resume_with_another_config_is_refused(photos, tmp_path):
    _trainer(photos, tmp_path, steps=1, ckpt_every=1).train()
    job = TrainJob(family="vqgan", preset="tiny", data="x", out="x", model={"quantizer": {"codebook_size": 128}})
    model, loss, config = build_run(job)
    trainer = Trainer(model, [], config, tmp_path, loss=loss)
    with pytest.raises(Exception, match="another vqgan config"):
        trainer.resume()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(photos, tmp_path):
    good = ImageBatches(photos, image_size=32, batch_size=8)

    class PoisonAfter:
        def iter_from(self, index):
            for i, batch in enumerate(good.iter_from(index), start=index):
                yield batch if i < 3 else batch * float("nan")

    model, loss, config = _run(steps=6, ckpt_every=2, log_every=1, disc_start=100)
    trainer = Trainer(model, PoisonAfter(), config, tmp_path, loss=loss)
    with pytest.raises(NonFiniteLossError, match=r"step 3: generator loss is not finite.*step_00000002.safetensors"):
        trainer.train()
    assert latest_checkpoint(tmp_path).name == "step_00000002.safetensors"
    weights = load_checkpoint(tmp_path / "step_00000002.safetensors").model
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    assert all(torch.isfinite(v).all() for v in trainer.model.state_dict().values() if v.is_floating_point())


def test_batches_of_the_wrong_size_are_refused(photos, tmp_path):
    model, loss, config = _run(steps=1)
    data = ImageBatches(photos, image_size=32, batch_size=4)
    with pytest.raises(ValueError, match="batches of 4 images but batch_size 8"):
        Trainer(model, data, config, tmp_path, loss=loss).train()


def test_image_batches_restart_anywhere_and_split_ranks(photos):
    stream = ImageBatches(photos, image_size=32, batch_size=5, seed=3)
    it = iter(stream)
    first = [next(it) for _ in range(12)]  # 60 samples: crosses into the second epoch (48 images)
    again = list(zip(range(5), stream.iter_from(7)))
    assert all(torch.equal(first[7 + i], batch) for i, batch in again)
    assert first[0].shape == (5, 3, 32, 32) and first[0].min() >= -1 and first[0].max() <= 1
    ranks = [ImageBatches(photos, image_size=32, batch_size=4, seed=3, rank=r, world_size=2) for r in (0, 1)]
    assert ranks[0]._epoch_size(0) + ranks[1]._epoch_size(0) == 48
    keys = [{rec.key for rec, _ in r._epoch(0, 0)} for r in ranks]
    assert not keys[0] & keys[1] and len(keys[0] | keys[1]) == 48


def test_training_on_an_image_shard_set_resumes_exactly(photos, tmp_path):
    """Shard sets go through vq-data's stateful loader; its state travels in the checkpoint."""
    from vq_data import make_source, pack

    pack(make_source(photos), tmp_path / "shards", samples_per_shard=16, image_size=40)
    job = {"family": "vqgan", "preset": "tiny", "data": str(tmp_path / "shards"), "train": {"batch_size": 4, "log_every": 1}}
    straight = train_tokenizer({**job, "out": str(tmp_path / "a"), "train": {**job["train"], "steps": 4}})
    train_tokenizer({**job, "out": str(tmp_path / "b"), "train": {**job["train"], "steps": 2}})
    resumed = train_tokenizer({**job, "out": str(tmp_path / "b"), "train": {**job["train"], "steps": 4}, "resume": True})
    assert load_checkpoint(tmp_path / "b" / "step_00000002.safetensors").state["data"] is not None
    a, b = (load_checkpoint(tmp_path / run / "tokenizer.safetensors").model for run in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert {k: v for k, v in straight.items() if k != "seconds_per_step"} == {
        k: v for k, v in resumed.items() if k != "seconds_per_step"
    }


def test_train_job_and_cli(photos, tmp_path):
    metrics = train_tokenizer(
        {"family": "fsq", "preset": "tiny", "data": str(photos), "out": str(tmp_path / "fsq"), "train": {"steps": 2, "batch_size": 4}}
    )
    assert metrics["step"] == 2 and (tmp_path / "fsq" / "tokenizer.safetensors").is_file()
    runner = CliRunner()
    args = ["train", "--family", "cvq", "--data", str(photos), "--out", str(tmp_path / "cvq"), "--steps", "2", "--batch-size", "4"]
    result = runner.invoke(main, [*args, "--train-set", "log_every=1", "--set", "quantizer.codebook_size=64"])
    assert result.exit_code == 0, result.output
    assert load_tokenizer(tmp_path / "cvq" / "tokenizer.safetensors").codebook_size == 64
    result = runner.invoke(main, [*args[:-4], "--steps", "3", "--batch-size", "4", "--set", "quantizer.codebook_size=64", "--resume"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "cvq" / "tokenizer.safetensors").step == 3
    listing = runner.invoke(main, ["presets"]).output
    assert "vqgan_f16_8192_dd2_aglwg075" in listing and "llamagen_vq16" in listing and "fsq_f16_64000" in listing


DDP_SCRIPT = """
import json, os, sys, torch, torch.distributed as dist
from vq_tokenizers import TrainJob, build_run
from vq_tokenizers.training.job import init_distributed_from_env
init_distributed_from_env()  # the process group torchrun's variables describe
rank, world = dist.get_rank(), dist.get_world_size()
torch.set_num_threads(1)
from vq_tokenizers.training import ImageBatches, Trainer

job = TrainJob(family="cvq", preset="tiny", data=sys.argv[1], out=sys.argv[2],
               train={"steps": 3, "batch_size": 8, "grad_accum": 2, "disc_start": 1, "log_every": 1, "ckpt_every": 2})
model, loss, config = build_run(job)
torch.manual_seed(rank)  # different weights (and discriminator) on each rank: all must start from rank 0's
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p))
data = ImageBatches(job.data, image_size=32, batch_size=config.micro_batch_size(world), rank=rank, world_size=world)
trainer = Trainer(model, data, config, job.out, loss=loss)
trainer.train()
flat = torch.cat([p.detach().flatten() for p in [*trainer.model.parameters(), *trainer.discriminator.parameters()]])
gathered = [torch.zeros_like(flat) for _ in range(world)]
dist.all_gather(gathered, flat)
if rank == 0:
    json.dump({"max_diff": float((gathered[0] - gathered[1]).abs().max())}, open(sys.argv[3], "w"))
dist.barrier()  # neither rank tears the group down while the other still talks to it
dist.destroy_process_group()
"""


def test_ddp_ranks_stay_in_sync_and_only_rank_zero_writes(photos, tmp_path):
    import os
    import socket
    import subprocess
    import sys

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(photos), str(tmp_path / "out"), str(tmp_path / "result.json")],
            env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for r in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert json.loads((tmp_path / "result.json").read_text())["max_diff"] == 0.0
    lines = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]  # one writer, not one per rank
    assert sorted(p.name for p in (tmp_path / "out").glob("*.safetensors")) == ["step_00000002.safetensors", "step_00000003.safetensors", "tokenizer.safetensors"]
