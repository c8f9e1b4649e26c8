"""The pipeline config: one file describes data, tokenizer, tokens, AR model, sampling and evaluation."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vq_core import StrictConfig


class DataStage(StrictConfig):
    """Where images come from and how they are stored as shards."""

    source: Literal["bundled", "folder", "imagenet", "list"] = "bundled"
    path: str | None = Field(default=None, description="folder, ImageNet root or list file (not for bundled)")
    split: str = "train"
    image_size: int = Field(default=32, gt=0)
    crops_per_image: int = Field(default=24, gt=0, description="bundled source: random crops per photo")
    samples_per_shard: int = Field(default=64, gt=0)


class TrainSettings(StrictConfig):
    steps: int = Field(default=300, gt=0)
    batch_size: int = Field(default=16, gt=0)
    lr: float = Field(default=4e-4, gt=0)
    grad_accum: int = Field(default=1, gt=0)


class TokenizerStage(StrictConfig):
    """Which tokenizer family/preset to train (or a checkpoint to use as it is)."""

    family: Literal["vqgan", "cvq", "fsq", "vqkd", "cluster"] = "cvq"
    preset: str = "tiny"
    overrides: dict[str, Any] = Field(default_factory=dict)
    teacher: str | None = Field(default=None, description="vqkd/cluster teacher spec, e.g. clip:/models/clip")
    checkpoint: str | None = Field(default=None, description="skip training and use this checkpoint")
    pixel_decoder: TrainSettings | None = Field(default=None, description="vqkd/cluster: train a pixel decoder")
    train: TrainSettings = Field(default_factory=TrainSettings)


class TokenizeStage(StrictConfig):
    batch_size: int = Field(default=32, gt=0)
    ten_crop: bool = False
    samples_per_shard: int = Field(default=256, gt=0)


class ARStage(StrictConfig):
    size: str = "tiny"
    train: TrainSettings = Field(default_factory=lambda: TrainSettings(steps=300, batch_size=32, lr=1e-3))


class SampleStage(StrictConfig):
    classes: list[int] | None = Field(default=None, description="default: every class of the dataset")
    per_class: int = Field(default=4, gt=0)
    cfg_scale: float = Field(default=1.75, ge=0)
    temperature: float = Field(default=1.0, gt=0)
    top_k: int = Field(default=0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)


class EvalStage(StrictConfig):
    max_images: int = Field(default=128, gt=0)
    inception_weights: str | None = None
    lpips_weights: str | None = None


class RaySettings(StrictConfig):
    address: str | None = Field(default=None, description="None: in-process; 'local' or 'auto' for Ray")
    num_workers: int = Field(default=1, gt=0)
    use_gpu: bool = False
    max_failures: int = Field(default=2, ge=0)


class PipelineConfig(StrictConfig):
    seed: int = 0
    data: DataStage = Field(default_factory=DataStage)
    tokenizer: TokenizerStage = Field(default_factory=TokenizerStage)
    tokenize: TokenizeStage = Field(default_factory=TokenizeStage)
    ar: ARStage = Field(default_factory=ARStage)
    sample: SampleStage = Field(default_factory=SampleStage)
    eval: EvalStage = Field(default_factory=EvalStage)
    ray: RaySettings = Field(default_factory=RaySettings)
