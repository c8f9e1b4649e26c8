"""The judge stage: an independent classifier scores reconstructions and CFG / no-CFG samples.

For labelled small-image data (the ``digits`` source) there is a number a CPU can compute that says
whether the AR model learned class-conditional structure: :class:`vq_eval.PixelJudge` is fitted on the
real images of the *eval* split (held out: no tokenizer or AR model saw them) and then judges

* real training images (its ceiling: its own accuracy on real images it did not fit),
* the tokenizer's reconstructions of those same training images (judged accuracy beside PSNR/SSIM),
* for each guidance scale in ``judge.cfg_scales`` (1.0 = no guidance), ``per_class`` samples of every
  class: class accuracy, Fréchet distance and k-NN precision/recall against the real training images
  in the judge's feature space.

One labelled grid (one row per class, misjudged samples framed red) is written per guidance scale.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from vq_core import atomic_write_bytes
from vq_data import iter_samples, open_manifest
from vq_eval import PixelJudge, class_rows_grid, png_bytes, psnr, ssim

from vq_pipeline.config import JudgeStage, SampleStage

log = logging.getLogger(__name__)


def labelled_images(shards: str | Path, limit: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, H, W, 3) uint8 images, (N,) labels and the class names of an image shard set (first ``limit``)."""
    manifest = open_manifest(shards)
    images, labels = [], []
    for sample in iter_samples(shards, manifest=manifest, limit=limit):
        images.append(np.asarray(Image.open(io.BytesIO(sample["png"])).convert("RGB")))
        labels.append(int(sample["cls"]))
    return np.stack(images), np.asarray(labels), list(manifest.dataset.class_names)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def _to_uint8(images: torch.Tensor) -> np.ndarray:
    return images.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def reconstruct(tokenizer: Any, images: np.ndarray, *, batch_size: int, device: torch.device) -> np.ndarray:
    """Tokenizer round trip of uint8 images, back to uint8 (what a saved PNG of the reconstruction holds)."""
    out = []
    for start in range(0, len(images), batch_size):
        x = _to_tensor(images[start : start + batch_size]).to(device)
        out.append(_to_uint8(tokenizer.decode(tokenizer.encode(x))))
    return np.concatenate(out)


@torch.no_grad()
def sample_images(
    model_path: str | Path, decoder_path: str | Path, labels: np.ndarray, sampling: SampleStage, cfg_scale: float, *,
    seed: int, device: torch.device,
) -> np.ndarray:
    """Class-conditional AR samples for ``labels`` at guidance ``cfg_scale``, decoded to uint8 images by
    this run's decoder (``load_pixel_decoder`` checks it decodes the AR model's token space)."""
    from vq_ar import SamplingConfig, decode_tokens, generate, load_ar, load_pixel_decoder

    loaded = load_ar(model_path, map_location=device)
    decoder = load_pixel_decoder(loaded.tokenizer, decoder_path, device=device)
    config = SamplingConfig(cfg_scale=cfg_scale, temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
    generator = torch.Generator(device=device).manual_seed(seed)
    chunks = torch.as_tensor(labels, dtype=torch.long, device=device).split(sampling.batch_size)
    tokens = [generate(loaded.model, chunk, sampling=config, generator=generator) for chunk in chunks]
    return np.concatenate([decode_tokens(decoder, t, loaded.config.grid) for t in tokens])


def scale_name(cfg_scale: float) -> str:
    """Metric prefix of a guidance scale: ``cfg1`` (no guidance), ``cfg3``, ``cfg1.5``."""
    return f"cfg{cfg_scale:g}"


def judge_stage(
    *, data: dict[str, Any], tokenizer_checkpoint: str | Path, ar_model: str | Path, settings: JudgeStage, sampling: SampleStage,
    seed: int, out: Path, device: torch.device,
) -> dict[str, Any]:
    """Fit the judge on ``data['eval']`` and score reconstructions and samples (module docstring); writes
    grids into ``out``.  Returns ``metrics`` and one ``grid_cfg<scale>`` path per guidance scale."""
    from vq_tokenizers import load_tokenizer

    heldout, heldout_labels, names = labelled_images(data["eval"])
    if data["eval"] == data["train"]:
        log.warning("judge: the eval split is the training split; its figures are not independent (set data.eval_split)")
    real, real_labels, _ = labelled_images(data["train"], settings.max_images)
    judge = PixelJudge(seed=seed).fit(heldout, heldout_labels)
    metrics: dict[str, Any] = {"judge_fit_images": len(heldout), "judge_ceiling": judge.accuracy(real, real_labels)}

    tokenizer = load_tokenizer(tokenizer_checkpoint, map_location=device).eval()
    recons = reconstruct(tokenizer, real, batch_size=settings.batch_size, device=device)
    metrics["judge_recon_accuracy"] = judge.accuracy(recons, real_labels)
    metrics["judge_recon_images"] = len(real)
    originals, rebuilt = _to_tensor(real), _to_tensor(recons)
    metrics["judge_recon_psnr"] = float(psnr(rebuilt, originals).mean())
    metrics["judge_recon_ssim"] = float(ssim(rebuilt, originals).mean())

    outputs: dict[str, Any] = {}
    num_classes = len(names)
    labels = np.repeat(np.arange(num_classes), settings.per_class)
    for i, scale in enumerate(settings.scales(sampling.cfg_scale)):
        generated = sample_images(ar_model, tokenizer_checkpoint, labels, sampling, scale, seed=seed + i, device=device)
        scores = judge.score_generation(generated, labels, real)
        metrics.update(scores.as_dict(prefix=f"judge_{scale_name(scale)}_"))
        grid = class_rows_grid(generated, labels, names, judged=judge.predict(generated), per_row=settings.grid_per_class)
        path = out / f"samples_{scale_name(scale)}.png"
        atomic_write_bytes(path, png_bytes(grid))
        outputs[f"grid_{scale_name(scale)}"] = path
        log.info("judge: CFG %g: %s", scale, scores)
    return {"metrics": metrics, **outputs}
