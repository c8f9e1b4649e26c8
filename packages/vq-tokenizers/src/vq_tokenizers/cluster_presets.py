"""The seed's Cluster setups (``configs/cluster/*``) as named presets of :class:`~vq_tokenizers.cluster.ClusterJob` fields.

The seed clusters frozen teacher features at **256 px** (the teacher runs at 256 px with interpolated
position embeddings: 16x16 patches of 768-d features; its CLIP reads the features after ``ln_post``
without projection), 8192 codes, batch 256 in total, 'strong' augmentation (RandomResizedCrop scale
(0.8, 1) + flip).  It fits the codebook by SGD (``configs/cluster/runner.py``: Adam lr 5.4e-5, betas
(0.5, 0.9), 100k iterations; ``model.py``: CVQ nearest-anchor updates), which ``fit-cluster --method
sgd`` reproduces (``cluster_sgd.py``); the default ``--method kmeans`` fits the same codebook by
streamed k-means (faster, no learning rate).  A preset holds both: what the tokens are computed from
(teacher, sizes, codebook size) and the seed's SGD settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ClusterPreset(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    teacher: str = Field(description="teacher spec kind (the path is the user's)")
    k: int
    image_size: int = Field(description="tokenizer input side")
    teacher_size: int = Field(description="side the teacher runs at")
    batch_size: int = Field(description="images per step in total (sgd)")
    steps: int = Field(default=100_000, description="sgd iterations (runner.py iters=1e5)")
    lr: float = Field(default=5.4e-5, description="sgd: Adam lr (runner.py)")
    betas: tuple[float, float] = Field(default=(0.5, 0.9), description="sgd: Adam betas (runner.py)")
    crop_scale: tuple[float, float] = Field(default=(0.8, 1.0), description="'strong' RandomResizedCrop scale + flip")
    description: str


SEED_CLUSTER_ROWS = (  # (name, teacher spec kind, seed config file, teacher as the seed names it)
    ("cluster_clip_8192", "clip-ln", "clip_8192_imagenet_ddp.py (encoders/clip.py)",
     "OpenAI CLIP ViT-B/16 after ln_post, no projection (with_proj=False)"),
    ("cluster_dino_8192", "dino", "interface.py with encoder='dino' (encoders/dino.py)", "DINO ViT-B/16"),
    ("cluster_mae_8192", "mae", "interface.py with encoder='mae' (encoders/mae.py)", "MAE ViT-B/16"),
    ("cluster_vit_8192", "tv-vit_b_16", "interface.py with encoder='vit' (encoders/vit.py)",
     "torchvision vit_b_16 (its 256-px run needs position interpolation of torchvision ViTs, not implemented)"),
)

CLUSTER_PRESETS: dict[str, ClusterPreset] = {
    name: ClusterPreset(
        name=name, teacher=teacher, k=8192, image_size=256, teacher_size=256, batch_size=256,
        description=f"seed configs/cluster/{encoder}: {label}, 8192 "
        f"codes of 768-d features on a 16x16 grid at 256 px (seed: SGD 100k x 256, Adam 5.4e-5 with CVQ anchors: "
        f"--method sgd; default: streamed k-means)",
    )
    for name, teacher, encoder, label in SEED_CLUSTER_ROWS
}
