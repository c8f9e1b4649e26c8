"""The paper's question at toy scale: at equal budget, do tokenizers distilled from an image-understanding
model give better AR generation than pixel tokenizers?

On scikit-learn's real digits (vq-data source ``digits``, 16 px, 4x4 tokens of 256 codes), for each seed:

1. the understanding model: a small CNN classifier (``vq_tokenizers.teachers.ConvNetClassifier``) trained
   on the train split, saved as a module teacher (any checkpointed feature extractor; its 4x4 x 64
   trunk features are the VQ-KD targets and the Cluster k-means space);
2. five tokenizers with the same budget - VQGAN, CVQ-VAE and FSQ train encoder + decoder for ``steps``;
   VQ-KD trains its encoder against the teacher for ``steps`` and then a pixel decoder for ``steps``;
   Cluster runs k-means on the teacher's features and trains a pixel decoder for ``steps`` (every
   image-space network gets ``steps`` optimizer steps at one batch size, no GAN or LPIPS for any);
3. the same AR model and schedule on each tokenizer's tokens, sampled with and without CFG;
4. the judged report of the pipeline (``vq_pipeline.judged``): reconstruction PSNR and judged accuracy
   on the 1,258 train images, codebook usage on the 539 held-out images, and for 200 samples a scale
   the judged class accuracy, the judged Fréchet distance and k-NN precision/recall.

Prints a Markdown table (mean +- standard deviation over seeds) and writes every run's metrics as JSON.

    python benchmarks/digits_study.py                 # 3 seeds, the full budget
    python benchmarks/digits_study.py --quick         # 1 seed, short schedules: a CI-sized check
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vq_data import DigitsSource
from vq_pipeline.config import load_config
from vq_pipeline.pipeline import run_pipeline
from vq_tokenizers.teachers import ConvNetClassifier, fit_classifier, save_module_teacher

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "apps" / "vq-pipeline" / "configs" / "digits.yaml"
FAMILIES = ("vqgan", "cvq", "fsq", "vqkd", "cluster")
TEACHER_KWARGS = {"channels": [32, 64], "num_classes": 10, "stem": 32}
NO_GAN = {"gan_weight": 0.0}
BUDGETS = {
    # steps of every image-space network, AR steps, teacher steps, samples judged per class and scale
    "full": {"steps": 300, "batch_size": 32, "ar_steps": 600, "ar_size": "tiny", "teacher_steps": 300, "per_class": 20},
    "quick": {"steps": 60, "batch_size": 16, "ar_steps": 100, "ar_size": "nano", "teacher_steps": 100, "per_class": 5},
}
COLUMNS = (
    ("judge_recon_psnr", "rec. PSNR", "{:.2f}"),
    ("judge_recon_accuracy", "rec. judged", "{:.1%}"),
    ("codebook_usage", "usage", "{:.1%}"),
    ("judge_cfg1_class_accuracy", "gen. judged, no CFG", "{:.1%}"),
    ("judge_cfg3_class_accuracy", "gen. judged, CFG 3", "{:.1%}"),
    ("judge_cfg3_frechet", "judged FD, CFG 3", "{:.2f}"),
    ("judge_cfg3_precision", "precision", "{:.2f}"),
    ("judge_cfg3_recall", "recall", "{:.2f}"),
)

log = logging.getLogger("digits_study")


def train_teacher(out: Path, *, seed: int, steps: int) -> tuple[str, float]:
    """The understanding model of this seed: a CNN classifier on the train split, saved as a module teacher.
    Returns its spec and its accuracy on the held-out digits."""
    def pixels(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = DigitsSource(split=split).arrays(16)
        return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1), torch.from_numpy(labels)

    torch.manual_seed(seed)
    model = ConvNetClassifier(**TEACHER_KWARGS)
    fit_classifier(model, *pixels("train"), steps=steps, seed=seed)
    held, held_labels = pixels("heldout")
    with torch.no_grad():
        accuracy = float((model.logits(held).argmax(1) == held_labels).float().mean())
    # mean = std = 0.5: the teacher sees the [-1, 1] pixels it was trained on
    save_module_teacher(model, out, kwargs=TEACHER_KWARGS, image_size=16, mean=(0.5,) * 3, std=(0.5,) * 3)
    return f"module:{out}", accuracy


def tokenizer_section(family: str, teacher: str, budget: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's ``tokenizer`` section of one family at the study's budget."""
    train = {"steps": budget["steps"], "batch_size": budget["batch_size"], "lr": 0.001,
             "overrides": {"ckpt_every": 100_000, "sample_every": 100_000}}
    decoder = {"preset": "tiny", "loss": NO_GAN, "train": train}
    if family == "vqkd":
        model = {"encoder": {"image_size": 16, "patch_size": 4}, "decoder": {"image_size": 4}}
        vqkd_train = {**train, "overrides": {"ckpt_every": 100_000}}
        return {"family": "vqkd", "preset": "tiny", "teacher": teacher, "overrides": model, "train": vqkd_train, "pixel_decoder": decoder}
    if family == "cluster":
        return {"family": "cluster", "teacher": teacher, "overrides": {"k": 256, "image_size": 16}, "pixel_decoder": decoder}
    return {"family": family, "preset": "tiny", "overrides": {"image_size": 16}, "loss": NO_GAN, "train": train}


def run_one(family: str, seed: int, teacher: str, budget: dict[str, Any], out: Path) -> dict[str, Any]:
    overrides = {
        "tokenizer": tokenizer_section(family, teacher, budget),
        "ar": {"size": budget["ar_size"], "train": {"steps": budget["ar_steps"], "batch_size": 64, "lr": 0.002,
                                                     "overrides": {"ckpt_every": 100_000}}},
        # the study's own sampling protocol, pinned here so tuning the demo's digits.yaml leaves it alone
        "sample": {"per_class": 2, "cfg_scale": 3.0, "temperature": 1.0, "top_k": 0, "top_p": 1.0},
        "judge": {"per_class": budget["per_class"], "cfg_scales": [1.0, 3.0]},
    }
    config = load_config(CONFIG, overrides=copy.deepcopy(overrides))
    config = config.model_copy(update={"seed": seed})
    start = time.perf_counter()
    result = run_pipeline(config, out)
    metrics = {k: v for k, v in result.metrics.items() if isinstance(v, (int, float))}
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def table(runs: dict[str, list[dict[str, Any]]]) -> str:
    """Markdown: one row per family, mean +- std over seeds (std with ddof 0; no spread for one seed)."""
    header = "| tokenizer | " + " | ".join(name for _, name, _ in COLUMNS) + " |"
    lines = [header, "| --- |" + " --- |" * len(COLUMNS)]
    for family, results in runs.items():
        cells = []
        for key, _, fmt in COLUMNS:
            values = np.array([r[key] for r in results if key in r], dtype=float)
            if values.size == 0:
                cells.append("-")
                continue
            mean = fmt.format(values.mean())
            cells.append(mean if values.size == 1 else f"{mean} ± {fmt.format(values.std()).rstrip('%')}")
        lines.append(f"| {family} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 seed, short schedules (a CI-sized check)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default: 0 1 2 (quick: 0)")
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "digits_study")
    parser.add_argument("--json", type=Path, default=None, help="default: <out>/results.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    logging.getLogger("vq_pipeline.evaluate").setLevel(logging.ERROR)  # LPIPS/FID weights are absent offline: expected
    mode = "quick" if args.quick else "full"
    budget = BUDGETS[mode]
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    out = args.out / mode
    runs: dict[str, list[dict[str, Any]]] = {f: [] for f in args.families}
    teachers: dict[int, float] = {}
    start = time.perf_counter()
    for seed in seeds:
        spec, teachers[seed] = train_teacher(out / f"seed{seed}" / "teacher", seed=seed, steps=budget["teacher_steps"])
        log.info("seed %d: teacher CNN judged held-out digits %.1f%%", seed, 100 * teachers[seed])
        for family in args.families:
            metrics = run_one(family, seed, spec, budget, out / f"seed{seed}" / family)
            runs[family].append(metrics)
            log.info("seed %d %s: %.0fs, CFG-3 samples judged %.1f%%", seed, family, metrics["seconds"],
                     100 * metrics["judge_cfg3_class_accuracy"])
    minutes = (time.perf_counter() - start) / 60
    ceiling = np.mean([r["judge_ceiling"] for rs in runs.values() for r in rs])
    print(table(runs))
    print(f"\n{mode} budget {budget}, seeds {seeds}; judge ceiling {ceiling:.1%}; teacher CNN on held-out digits "
          f"{np.mean(list(teachers.values())):.1%}; {minutes:.1f} min, {torch.get_num_threads()} threads")
    path = args.json or out / "results.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"mode": mode, "budget": budget, "seeds": seeds, "teacher_accuracy": teachers,
                                "minutes": minutes, "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
