"""The pipeline config: one file describes data, tokenizer, tokens, AR model, sampling and evaluation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, model_validator

from vq_core import ConfigError, StrictConfig
from vq_core.overrides import merge_overrides

TEACHER_FAMILIES = ("vqkd", "cluster")


class DataStage(StrictConfig):
    """Where images come from and how they are stored as shards."""

    source: Literal["bundled", "digits", "folder", "imagenet", "list"] = "bundled"
    path: str | None = Field(default=None, description="folder, ImageNet root or list file (not for bundled or digits)")
    split: str = "train"
    image_size: int = Field(default=32, gt=0)
    crops_per_image: int = Field(default=24, gt=0, description="bundled source: random crops per photo")
    samples_per_shard: int = Field(default=64, gt=0)
    eval_split: str | None = Field(default=None, description="split packed for evaluation (ImageNet: val); None: the first training images")
    workers: int = Field(default=1, gt=0, description="threads decoding/resizing images while packing")


class TrainSettings(StrictConfig):
    """The schedule fields every trainer shares; ``overrides`` sets any other field of that trainer's config."""

    steps: int = Field(default=300, gt=0)
    batch_size: int = Field(default=16, gt=0, description="global images (or sequences) per optimizer step")
    lr: float = Field(default=4e-4, gt=0)
    grad_accum: int = Field(default=1, gt=0)
    overrides: dict[str, Any] = Field(default_factory=dict, description="e.g. warmup_steps, ckpt_every, precision")

    def as_overrides(self) -> dict[str, Any]:
        """Train-config fields for the tokenizer / pixel-decoder / AR trainers."""
        accumulate = {"grad_accum": self.grad_accum} if self.grad_accum != 1 else {}  # the VQ-KD trainer has none
        return {"steps": self.steps, "batch_size": self.batch_size, "lr": self.lr, **accumulate, **self.overrides}


class PixelDecoderStage(StrictConfig):
    """A conv decoder trained on the frozen tokens of a VQ-KD / Cluster tokenizer (vq-tok train-pixel-decoder)."""

    preset: str = Field(default="tiny", description="tiny | vqgan | llamagen")
    overrides: dict[str, Any] = Field(default_factory=dict, description="decoder shape fields, e.g. ch")
    loss: dict[str, Any] = Field(default_factory=dict, description="loss fields, e.g. lpips_vgg_weights, perceptual_weight")
    train: TrainSettings = Field(default_factory=TrainSettings)


class TokenizerStage(StrictConfig):
    """Which tokenizer family/preset to train (or a checkpoint to use as it is)."""

    family: Literal["vqgan", "cvq", "fsq", "vqkd", "cluster"] = "cvq"
    preset: str = Field(default="tiny", description="vq-tok presets / train-vqkd presets; unused by cluster")
    overrides: dict[str, Any] = Field(default_factory=dict, description="model config fields; cluster: ClusterJob fields (k, epochs, ...)")
    teacher: str | None = Field(default=None, description="vqkd/cluster teacher spec, e.g. clip-proj:/models/clip-vit-base-patch16")
    loss: dict[str, Any] = Field(default_factory=dict, description="vqgan/cvq/fsq loss fields, e.g. lpips_vgg_weights")
    checkpoint: str | None = Field(default=None, description="skip training and use this tokenizer checkpoint")
    pixel_decoder: PixelDecoderStage | None = Field(default=None, description="vqkd/cluster: train a pixel decoder")
    train: TrainSettings = Field(default_factory=TrainSettings)

    @model_validator(mode="after")
    def _teacher_families_need_teacher_and_decoder(self) -> TokenizerStage:
        if self.family in TEACHER_FAMILIES:
            if self.teacher is None and self.checkpoint is None:
                raise ValueError(f"tokenizer.family {self.family!r} needs tokenizer.teacher (e.g. random-clip:tiny) or tokenizer.checkpoint")
            if self.pixel_decoder is None:
                raise ValueError(f"tokenizer.family {self.family!r} cannot decode tokens: add tokenizer.pixel_decoder (e.g. {{preset: tiny}})")
        elif self.pixel_decoder is not None:
            raise ValueError(f"tokenizer.family {self.family!r} decodes by itself; remove tokenizer.pixel_decoder")
        return self


class TokenizeStage(StrictConfig):
    """Images -> token shards (vq-tok tokenize; with Ray, a Ray Data actor pool of ray.num_workers)."""

    batch_size: int = Field(default=32, gt=0)
    ten_crop: bool = False
    samples_per_shard: int = Field(default=256, gt=0)
    image_size: int | None = Field(
        default=None, gt=0,
        description="side to tokenize at (None: the tokenizer's own); 256 with a 224-px VQ-KD/Cluster gives the seed's 16x16 tokens",
    )


class ARStage(StrictConfig):
    size: str = Field(default="tiny", description="vq-ar size: nano, tiny, small, B, L, XL, XXL")
    preset: str | None = Field(
        default=None,
        description="vq-ar preset (e.g. c2i_llama_medium_cfg, llamagen_gpt_l): its size, model and train fields, under "
        "overrides / train given here",
    )
    overrides: dict[str, Any] = Field(default_factory=dict, description="AR model config fields, e.g. rope")
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(steps=300, batch_size=32, lr=1e-3))


class SampleStage(StrictConfig):
    classes: list[int] | None = Field(default=None, description="default: every class of the dataset")
    per_class: int = Field(default=4, gt=0)
    cfg_scale: float = Field(default=1.75, ge=0)
    temperature: float = Field(default=1.0, gt=0)
    top_k: int = Field(default=0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    batch_size: int = Field(default=64, gt=0)


class EvalStage(StrictConfig):
    """Metrics that need weights (LPIPS, rFID/FID/IS) are computed when the weights are found, else skipped."""

    max_images: int = Field(default=128, gt=0, description="reconstruction images evaluated")
    batch_size: int = Field(default=32, gt=0)
    inception_weights: str | None = Field(default=None, description="pytorch-fid Inception weights; None: vq-eval's search")
    lpips_backbone: str | None = Field(default=None, description="torchvision AlexNet weights for LPIPS; None: vq-eval's search")
    fid_reference: str | None = Field(default=None, description="reference statistics (.npz from vq-eval fid-cache) for gFID")
    grid_images: int = Field(default=16, gt=0, description="originals/reconstructions shown in the report")


class JudgeStage(StrictConfig):
    """An independent judge (vq_eval.PixelJudge) fitted on the eval split's real images scores reconstructions
    and samples at each guidance scale (vq_pipeline.judged); for small labelled images such as digits."""

    per_class: int = Field(default=20, gt=0, description="samples of every class judged at each guidance scale")
    cfg_scales: list[float] | None = Field(default=None, description="guidance scales compared; None: [1.0 (no guidance), sample.cfg_scale]")
    max_images: int = Field(default=2000, gt=0, description="real training images judged, reconstructed, and compared with samples")
    grid_per_class: int = Field(default=10, gt=0, description="samples a row in each labelled grid")
    batch_size: int = Field(default=256, gt=0)

    def scales(self, cfg_scale: float) -> list[float]:
        """The guidance scales to sample at, no-guidance first."""
        return list(self.cfg_scales) if self.cfg_scales is not None else sorted({1.0, cfg_scale})


class RaySettings(StrictConfig):
    """How trainers and tokenizing run: in this process, or as Ray Train / Ray Data jobs (docs/ray.md)."""

    address: str | None = Field(default=None, description="None: in-process; 'local' or 'auto' (or ray://...) for Ray")
    num_workers: int = Field(default=1, gt=0, description="Ray Train workers (DDP ranks) / tokenizer actors")
    use_gpu: bool = False
    max_failures: int = Field(default=2, ge=0, description="worker restarts from the last checkpoint")
    storage_path: str | None = Field(default=None, description="Ray Train storage; None: <out>/ray (must be shared on a cluster)")


class PipelineConfig(StrictConfig):
    seed: int = 0
    data: DataStage = Field(default_factory=DataStage)
    tokenizer: TokenizerStage = Field(default_factory=TokenizerStage)
    tokenize: TokenizeStage = Field(default_factory=TokenizeStage)
    ar: ARStage = Field(default_factory=ARStage)
    sample: SampleStage = Field(default_factory=SampleStage)
    eval: EvalStage = Field(default_factory=EvalStage)
    judge: JudgeStage | None = Field(default=None, description="judged report (vq_pipeline.judged); None: no judge")
    ray: RaySettings = Field(default_factory=RaySettings)


def load_config(path: str | os.PathLike[str], *, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML file; ``overrides`` (nested dicts, e.g. from CLI flags) replace its values."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"pipeline config {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"pipeline config {path} is not valid YAML: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"pipeline config {path} must be a mapping of stages (data, tokenizer, ...), got {type(data).__name__}")
    data = merge_overrides(data, overrides or {})
    return PipelineConfig.from_dict(data, source=str(path))
