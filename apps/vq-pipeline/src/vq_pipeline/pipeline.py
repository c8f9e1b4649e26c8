"""data -> tokenizer -> (pixel decoder) -> tokens -> AR -> samples -> evaluation -> report, each stage resumable.

Every stage writes into ``<out>/<stage>/`` and finishes with a ``stage.json`` marker holding the hash of
its settings, of the input files it reads (the data folder, a given tokenizer checkpoint, teacher and
evaluation weights: :mod:`vq_pipeline.fingerprint`) *and of the stages it reads from*, so a re-run
skips what is done and redoes a changed stage - or one whose outputs are gone - and everything
downstream of it.  The trainers also resume inside a stage (their own
checkpoints; under Ray, the checkpoint Ray kept), so a killed run loses at most one checkpoint interval.
Ray settings are not part of any hash: a run started on a laptop can be finished on a cluster.
"""

from __future__ import annotations

import io
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vq_core import atomic_write_bytes, atomic_write_text, progress

from vq_pipeline.config import PipelineConfig
from vq_pipeline.fingerprint import path_fingerprint, teacher_path
from vq_pipeline.stages import StageResult, run_stage

log = logging.getLogger(__name__)

SAMPLE_GRID = "samples.png"


@dataclass
class PipelineResult:
    """What a run produced: every stage's result, the final metrics and the report files."""

    out: Path
    stages: list[StageResult] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None
    seconds: float = 0.0

    def stage(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.name == name)


def _device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Pipeline:
    """One run of a :class:`PipelineConfig` into an output directory."""

    def __init__(self, config: PipelineConfig, out: str | Path) -> None:
        self.config = config
        self.out = Path(out).resolve()
        self.result = PipelineResult(self.out)

    def _train(self, fn: Any, loop: dict[str, Any], directory: Path, digest: str, *, data_parallel: bool = True) -> dict[str, Any]:
        """Launch a trainer for the stage in ``directory``.  Its Ray run is named by stage and settings hash,
        so a changed stage never restores another settings' checkpoint from the Ray storage."""
        from vq_pipeline.trainers import run_trainer

        ray = self.config.ray
        storage = Path(ray.storage_path).resolve() if ray.storage_path else directory / "ray"
        name = f"{directory.name}-{digest}"
        return run_trainer(fn, loop, ray, name=name, storage=storage, data_parallel=data_parallel)

    def _stage(self, name: str, settings: dict[str, Any], body: Any) -> StageResult:
        result = run_stage(name, self.out / name, settings, body, root=self.out)
        self.result.stages.append(result)
        return result

    # --- stages ----------------------------------------------------------------------------------
    def data(self) -> StageResult:
        from vq_data import make_source, pack

        cfg = self.config.data

        def body(directory: Path, digest: str) -> dict[str, Any]:
            outputs: dict[str, Any] = {}
            for role, split in (("train", cfg.split), ("eval", cfg.eval_split)):
                if split is None:
                    continue
                source = make_source(
                    cfg.path if cfg.source != "bundled" else "bundled",
                    kind=cfg.source, split=split, crops_per_image=cfg.crops_per_image, seed=self.config.seed,
                )
                manifest = pack(
                    source, directory / role, samples_per_shard=cfg.samples_per_shard, image_size=cfg.image_size,
                    workers=cfg.workers,
                )
                outputs[role] = directory / role
                outputs[f"{role}_images"] = manifest.num_samples
                outputs["num_classes"] = manifest.dataset.num_classes
            outputs.setdefault("eval", outputs["train"])
            return outputs

        inputs = {"data.path": path_fingerprint(cfg.path, field="data.path")} if cfg.path is not None else {}
        return self._stage("data", {"data": cfg.model_dump(mode="json"), "seed": self.config.seed, "inputs": inputs}, body)

    def tokenizer(self, data: StageResult) -> StageResult:
        from vq_tokenizers import ClusterJob, TrainJob, VQKDJob, fit_cluster, train_tokenizer, train_vqkd

        cfg = self.config.tokenizer
        images = str(data.outputs["train"])

        def body(directory: Path, digest: str) -> dict[str, Any]:
            if cfg.checkpoint is not None:
                return {"checkpoint": Path(cfg.checkpoint).resolve(), "metrics": {}}
            train = {**cfg.train.as_overrides(), "seed": self.config.seed}
            common = {"data": images, "out": str(directory)}
            if cfg.family == "vqkd":
                job = VQKDJob(teacher=cfg.teacher, preset=cfg.preset, model=cfg.overrides, train=train, resume=True, **common)
                metrics = self._train(train_vqkd, job.model_dump(mode="json"), directory, digest)
            elif cfg.family == "cluster":
                fields = {"teacher": cfg.teacher, "seed": self.config.seed, **cfg.overrides, **common}
                job = ClusterJob.from_dict(fields, source="tokenizer.overrides of the pipeline config")
                metrics = self._train(fit_cluster, job.model_dump(mode="json"), directory, digest, data_parallel=False)
            else:
                job = TrainJob(family=cfg.family, preset=cfg.preset, model=cfg.overrides, loss=cfg.loss, train=train, resume=True, **common)
                metrics = self._train(train_tokenizer, job.model_dump(mode="json"), directory, digest)
            return {"checkpoint": directory / "tokenizer.safetensors", "metrics": metrics}

        inputs = {}
        if cfg.checkpoint is not None:
            inputs["tokenizer.checkpoint"] = path_fingerprint(cfg.checkpoint, field="tokenizer.checkpoint")
        teacher = teacher_path(cfg.teacher)
        if teacher is not None:
            inputs["tokenizer.teacher"] = path_fingerprint(teacher, field="tokenizer.teacher")
        settings = {"tokenizer": cfg.model_dump(mode="json"), "seed": self.config.seed, "data": data.hash, "inputs": inputs}
        return self._stage("tokenizer", settings, body)

    def pixel_decoder(self, data: StageResult, tokenizer: StageResult) -> StageResult | None:
        """A conv decoder for the frozen tokens of a VQ-KD / Cluster tokenizer (None for other families)."""
        from vq_tokenizers import PixelDecoderJob, train_pixel_decoder

        cfg = self.config.tokenizer.pixel_decoder
        if cfg is None:
            return None

        def body(directory: Path, digest: str) -> dict[str, Any]:
            job = PixelDecoderJob(
                tokenizer=str(tokenizer.outputs["checkpoint"]), data=str(data.outputs["train"]), out=str(directory), preset=cfg.preset,
                decoder=cfg.overrides, loss=cfg.loss, train={**cfg.train.as_overrides(), "seed": self.config.seed}, resume=True,
            )
            metrics = self._train(train_pixel_decoder, job.model_dump(mode="json"), directory, digest)
            return {"checkpoint": directory / "tokenizer.safetensors", "metrics": metrics}

        settings = {
            "pixel_decoder": cfg.model_dump(mode="json"), "seed": self.config.seed, "tokenizer": tokenizer.hash, "data": data.hash,
        }
        return self._stage("pixel_decoder", settings, body)

    def tokens(self, data: StageResult, decoder: StageResult) -> StageResult:
        """Token shards of the training images, made with the decodable tokenizer (so samples can be decoded)."""
        cfg = self.config.tokenize
        ray = self.config.ray

        def body(directory: Path, digest: str) -> dict[str, Any]:
            common = {
                "samples_per_shard": cfg.samples_per_shard, "ten_crop": cfg.ten_crop, "batch_size": cfg.batch_size,
                "image_size": cfg.image_size,
            }
            if ray.address is None:
                from vq_tokenizers import tokenize_shards

                manifest = tokenize_shards(decoder.outputs["checkpoint"], data.outputs["train"], directory / "shards", **common)
            else:
                from vq_tokenizers import tokenize_shards_ray

                manifest = tokenize_shards_ray(
                    decoder.outputs["checkpoint"], data.outputs["train"], directory / "shards", ray_address=ray.address,
                    num_workers=ray.num_workers, use_gpu=ray.use_gpu, **common,
                )
            return {"shards": directory / "shards", "num_samples": manifest.num_samples, "num_shards": len(manifest.shards)}

        return self._stage("tokens", {"tokenize": cfg.model_dump(mode="json"), "decoder": decoder.hash, "data": data.hash}, body)

    def ar(self, tokens: StageResult) -> StageResult:
        from vq_ar import train_loop

        cfg = self.config.ar

        def body(directory: Path, digest: str) -> dict[str, Any]:
            size, model, train = cfg.size, dict(cfg.overrides), {**cfg.train.as_overrides(), "seed": self.config.seed}
            if cfg.preset is not None:  # the preset's fields under what the config states
                from vq_ar.presets import get_preset as get_ar_preset

                preset = get_ar_preset(cfg.preset)
                size, model, train = preset.size, {**preset.model, **model}, {**preset.train, **train}
            loop = {
                "data": str(tokens.outputs["shards"]), "out": str(directory), "size": size, "model_overrides": model,
                "train": train, "resume": True,
            }
            metrics = self._train(train_loop, loop, directory, digest)
            return {"model": directory / "model.safetensors", "metrics": metrics}

        return self._stage("ar", {"ar": cfg.model_dump(mode="json"), "seed": self.config.seed, "tokens": tokens.hash}, body)

    def samples(self, ar: StageResult, decoder: StageResult) -> StageResult:
        """Class-conditional CFG samples: one PNG each under ``images/``, a grid, and the tokens.

        The decoder is this run's (not the path the AR checkpoint recorded, which a moved run folder
        no longer has); ``load_pixel_decoder`` still checks that it decodes the AR model's token space."""
        from vq_ar import SamplingConfig, decode_tokens, generate, image_grid, load_ar, load_pixel_decoder, write_png

        cfg = self.config.sample

        def body(directory: Path, digest: str) -> dict[str, Any]:
            device = _device()
            loaded = load_ar(ar.outputs["model"], map_location=device)
            tokenizer = load_pixel_decoder(loaded.tokenizer, decoder.outputs["checkpoint"], device=device)
            classes = cfg.classes if cfg.classes is not None else list(range(loaded.config.num_classes))
            labels = torch.tensor([c for c in classes for _ in range(cfg.per_class)], dtype=torch.long, device=device)
            sampling = SamplingConfig(cfg_scale=cfg.cfg_scale, temperature=cfg.temperature, top_k=cfg.top_k, top_p=cfg.top_p)
            generator = torch.Generator(device=device).manual_seed(self.config.seed)
            chunks = labels.split(cfg.batch_size)
            tokens = torch.cat([generate(loaded.model, chunk, sampling=sampling, generator=generator).cpu() for chunk in chunks])
            images = np.concatenate([decode_tokens(tokenizer, t, loaded.config.grid) for t in tokens.split(cfg.batch_size)])
            for i, (image, label) in enumerate(zip(images, labels.tolist())):
                write_png(directory / "images" / f"class{label:04d}_{i % cfg.per_class:04d}.png", image)
            columns = min(cfg.per_class, 16) if len(classes) > 1 else math.ceil(math.sqrt(len(images)))  # a row per class
            write_png(directory / SAMPLE_GRID, image_grid(images, columns=columns))
            buffer = io.BytesIO()
            np.save(buffer, tokens.numpy().astype(np.int32))
            atomic_write_bytes(directory / "tokens.npy", buffer.getvalue())
            names = loaded.dataset.class_names
            return {
                "images": directory / "images", "grid": directory / SAMPLE_GRID, "tokens": directory / "tokens.npy",
                "num_samples": len(images),
                "classes": [names[c] if c < len(names) else str(c) for c in classes],
            }

        settings = {"sample": cfg.model_dump(mode="json"), "seed": self.config.seed, "ar": ar.hash, "decoder": decoder.hash}
        return self._stage("samples", settings, body)

    def evaluation(self, data: StageResult, decoder: StageResult, samples: StageResult) -> StageResult:
        from vq_tokenizers import load_tokenizer

        cfg = self.config.eval
        from vq_pipeline.evaluate import RECONSTRUCTION_GRID, evaluate

        def body(directory: Path, digest: str) -> dict[str, Any]:
            device = _device()
            tokenizer = load_tokenizer(decoder.outputs["checkpoint"], map_location=device)
            eval_images, sample_images = Path(data.outputs["eval"]), Path(samples.outputs["images"])
            count = data.outputs["eval_images" if "eval_images" in data.outputs else "train_images"]
            metrics = evaluate(tokenizer, eval_images, count, sample_images, cfg, directory, device=device)
            return {
                "metrics": metrics, "reconstruction_grid": directory / RECONSTRUCTION_GRID,
                "token_space": tokenizer.token_space_hash(),
            }

        weights = {"inception_weights": cfg.inception_weights, "lpips_backbone": cfg.lpips_backbone, "fid_reference": cfg.fid_reference}
        inputs = {f"eval.{k}": path_fingerprint(v, field=f"eval.{k}") for k, v in weights.items() if v is not None}
        settings = {
            "eval": cfg.model_dump(mode="json"), "decoder": decoder.hash, "samples": samples.hash, "data": data.hash,
            "inputs": inputs,
        }
        return self._stage("eval", settings, body)

    def judge(self, data: StageResult, decoder: StageResult, ar: StageResult) -> StageResult | None:
        """The judged figures of :mod:`vq_pipeline.judged` (None when the config has no ``judge``)."""
        cfg = self.config.judge
        if cfg is None:
            return None
        from vq_pipeline.judged import judge_stage

        def body(directory: Path, digest: str) -> dict[str, Any]:
            return judge_stage(
                data=data.outputs, tokenizer_checkpoint=decoder.outputs["checkpoint"], ar_model=ar.outputs["model"],
                settings=cfg, sampling=self.config.sample, seed=self.config.seed, out=directory, device=_device(),
            )

        settings = {
            "judge": cfg.model_dump(mode="json"), "sample": self.config.sample.model_dump(mode="json"), "seed": self.config.seed,
            "data": data.hash, "decoder": decoder.hash, "ar": ar.hash,
        }
        return self._stage("judge", settings, body)

    # --- the whole run ---------------------------------------------------------------------------
    def run(self) -> PipelineResult:
        from vq_pipeline.report import write_pipeline_report

        start = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.out / "config.json", self.config.model_dump_json(indent=2) + "\n")
        bar = progress(total=8, desc="pipeline", unit="stage")  # each stage's own work has its bar too

        def done(value: Any) -> Any:
            bar.update(1)
            return value

        data = done(self.data())
        tokenizer = done(self.tokenizer(data))
        decoder = done(self.pixel_decoder(data, tokenizer)) or tokenizer
        tokens = done(self.tokens(data, decoder))
        ar = done(self.ar(tokens))
        samples = done(self.samples(ar, decoder))
        evaluation = done(self.evaluation(data, decoder, samples))
        judged = done(self.judge(data, decoder, ar))
        bar.close()
        self.result.seconds = time.perf_counter() - start
        self.result.metrics = _final_metrics(self.result)
        self.result.report = write_pipeline_report(self.result, self.config, evaluation, samples, judged)
        log.info("pipeline done in %.1fs; report %s", self.result.seconds, self.result.report)
        return self.result


def _final_metrics(result: PipelineResult) -> dict[str, Any]:
    """One flat dict: evaluation metrics, the last training metrics of each trainer, data/token counts."""
    metrics: dict[str, Any] = {k: v for k, v in result.stage("eval").outputs["metrics"].items() if k != "skipped"}
    for name in ("tokenizer", "pixel_decoder", "ar"):
        stage = next((s for s in result.stages if s.name == name), None)
        if stage is not None:
            for key, value in stage.outputs.get("metrics", {}).items():
                if isinstance(value, (int, float)):
                    metrics[f"{name}_{key}"] = value
    judged = next((s for s in result.stages if s.name == "judge"), None)
    if judged is not None:
        metrics.update(judged.outputs["metrics"])
    metrics["train_images"] = result.stage("data").outputs["train_images"]
    metrics["token_samples"] = result.stage("tokens").outputs["num_samples"]
    metrics["generated_images"] = result.stage("samples").outputs["num_samples"]
    return metrics


def run_pipeline(config: PipelineConfig, out: str | Path) -> PipelineResult:
    """Run (or finish) every stage of ``config`` into ``out``."""
    return Pipeline(config, out).run()
