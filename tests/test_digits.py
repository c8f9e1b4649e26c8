"""The digits pipeline at its smallest size learns class-conditional structure an independent judge sees.

The judge (vq_eval.PixelJudge) is fitted on held-out real digits that neither the tokenizer nor the AR
model saw; with 10 classes chance is 10 %, so a CFG sample set judged >= 30 % as its class is far
above what an AR model that ignores its label can reach.  Seeds are fixed and the run goes in a fresh interpreter on
one thread, so neither the tests that ran before it (global torch state) nor the core count change it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

CONFIG = Path(__file__).resolve().parents[1] / "apps" / "vq-pipeline" / "configs" / "digits.yaml"

# the smallest digits run: the README config with short schedules and the nano AR model
SMALLEST = {
    "tokenizer": {
        "overrides": {"image_size": 16, "attn_resolutions": []},
        "train": {"steps": 250, "batch_size": 16, "lr": 0.002, "overrides": {"ckpt_every": 1000, "sample_every": 100000}},
    },
    "ar": {"size": "nano", "train": {"steps": 250, "batch_size": 64, "lr": 0.003, "overrides": {"ckpt_every": 1000}}},
    "sample": {"per_class": 2, "cfg_scale": 3.0, "temperature": 1.0},
    "eval": {"max_images": 64},
    "judge": {"per_class": 10, "max_images": 400},
}


def test_smallest_digits_run_makes_samples_the_judge_assigns_to_their_class(tmp_path: Path) -> None:
    script = (
        "import json, sys, torch\n"
        "from vq_pipeline.config import load_config\n"
        "from vq_pipeline.pipeline import run_pipeline\n"
        "torch.set_num_threads(1)\n"
        "result = run_pipeline(load_config(sys.argv[1], overrides=json.loads(sys.argv[2])), sys.argv[3])\n"
        "print(json.dumps(result.metrics))\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(CONFIG), json.dumps(SMALLEST), str(tmp_path / "run")],
        capture_output=True, text=True, env=env, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["judge_fit_images"] == 539 and metrics["train_images"] == 1258
    assert metrics["judge_ceiling"] >= 0.95  # the judge itself on real digits it did not fit
    judged = {k: v for k, v in metrics.items() if k.startswith("judge_")}
    assert metrics["judge_recon_accuracy"] >= 0.6, judged
    assert metrics["judge_cfg3_class_accuracy"] >= 0.3, judged  # chance: 0.1
    assert metrics["judge_cfg1_num_samples"] == metrics["judge_cfg3_num_samples"] == 100
    report = tmp_path / "run" / "report"
    assert json.loads((report / "metrics.json").read_text())["judge_cfg3_class_accuracy"] == metrics["judge_cfg3_class_accuracy"]
    text = (report / "report.md").read_text()
    assert "| samples judged as their class |" in text and "no CFG (1.0)" in text and "CFG 3" in text
    grid = Image.open(report / "samples_cfg3.png")
    assert grid.height >= 10 * 48  # one row per digit, each enlarged to >= 48 px
