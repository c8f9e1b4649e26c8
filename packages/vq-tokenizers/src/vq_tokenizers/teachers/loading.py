"""Teacher specs (``kind:path``) for CLIs and configs, and rebuilding a teacher from its config.

Specs:

=======================  =====================================================================
``clip:DIR``             transformers ``CLIPVisionModel``: last hidden state, patch tokens
``clip-proj:DIR``        CLIP patch tokens through post-LayerNorm + visual projection (BEiT v2)
``clip-ln:DIR``          CLIP patch tokens through post-LayerNorm only (the seed's Cluster CLIP)
``mae:DIR``              transformers ``ViTMAEModel`` (MAE ViT-B/16), unmasked, final LayerNorm
``dino:DIR``/``vit:DIR`` transformers ``ViTModel`` (e.g. a DINO ViT-B/16), final LayerNorm output
``dinov2:DIR``           transformers ``Dinov2Model``
``tv-<arch>:FILE``       torchvision ``vit_b_16`` ... or ``convnext_tiny`` ... state-dict file
``module:DIR``            any ``nn.Module`` feature extractor saved with ``save_module_teacher``
                         (``teacher.json`` + ``model.safetensors``; see ``teachers/module.py``)
``openclip:LOC``         open_clip ViT (OpenCLIP ViT-L/14, ViT-bigG/14): tokens through ln_post + projection
``evaclip:LOC``          open_clip EVA02 (EVA02-CLIP-B/16): the timm trunk's normalised patch tokens
                         (LOC: an open_clip model directory, NAME@FILE, or NAME:TAG in open_clip's HF cache;
                         see ``teachers/open_clip_models.py``)
``random-clip:tiny``     a randomly initialised, seeded 2-layer CLIP (32 px, 4x4 patches of dim 32);
                         its features are meaningless - for demos and tests only
=======================  =====================================================================
"""

from __future__ import annotations

from typing import Any

from vq_tokenizers.teachers.base import Teacher, TeacherConfig

RANDOM_TEACHERS: dict[str, dict[str, Any]] = {
    "tiny": {
        "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "image_size": 32,
        "patch_size": 8, "projection_dim": 16,
    },
}
"""``CLIPVisionConfig`` fields of the ``random-clip:<name>`` teachers."""
RANDOM_SEED = 0
_HF_KINDS = {  # spec kind -> (teacher kind, project, post_norm)
    "clip": ("clip", False, False),
    "clip-proj": ("clip", True, False),
    "clip-ln": ("clip", False, True),
    "dino": ("vit", False, False),
    "vit": ("vit", False, False),
    "dinov2": ("dinov2", False, False),
    "mae": ("mae", False, False),
}
OPEN_CLIP_KINDS = ("openclip", "evaclip")
"""The seed's OpenCLIP (ViT-L/14, ViT-bigG/14) and EVA02-CLIP-B/16 teachers (open_clip_torch)."""


def build_teacher(config: TeacherConfig) -> Teacher:
    """The network a config describes, with fresh weights (a checkpoint's state dict fills them)."""
    if config.kind in ("clip", "vit", "dinov2", "mae"):
        from vq_tokenizers.teachers.hf import HFTeacher

        return HFTeacher(config)
    if config.kind == "module":
        from vq_tokenizers.teachers.module import ModuleTeacher

        return ModuleTeacher(config)
    if config.kind in OPEN_CLIP_KINDS:
        from vq_tokenizers.teachers.open_clip_models import OpenCLIPTeacher

        return OpenCLIPTeacher(config)
    from vq_tokenizers.teachers.torchvision_models import TorchvisionTeacher

    return TorchvisionTeacher(config)


def load_teacher(spec: str, *, image_size: int | None = None, layer: int | None = None) -> Teacher:
    """A frozen teacher from a spec such as ``clip:/models/clip-vit-b16`` (see the module docstring)."""
    kind, sep, location = spec.partition(":")
    if not sep or not location:
        raise ValueError(f"teacher spec {spec!r} is not kind:path (e.g. clip:/models/clip-vit-base-patch16)")
    if kind in _HF_KINDS:
        from vq_tokenizers.teachers.hf import load_hf_teacher

        hf_kind, project, post_norm = _HF_KINDS[kind]
        return load_hf_teacher(hf_kind, location, image_size=image_size, layer=layer, project=project, post_norm=post_norm)
    if kind in OPEN_CLIP_KINDS:
        from vq_tokenizers.teachers.open_clip_models import load_open_clip_teacher

        if layer is not None:
            raise ValueError(f"{kind} teachers read the final tokens (the seed's); layer must be None")
        return load_open_clip_teacher(kind, location, image_size=image_size)
    if kind.startswith("tv-"):
        from vq_tokenizers.teachers.torchvision_models import load_torchvision_teacher

        return load_torchvision_teacher(kind[3:], location, layer=layer, image_size=image_size)
    if kind == "module":
        from vq_tokenizers.teachers.module import load_module_teacher

        if layer is not None:
            raise ValueError("module teachers return their forward output; layer must be None")
        return load_module_teacher(location, image_size=image_size)
    if kind == "random-clip":
        if location not in RANDOM_TEACHERS:
            raise ValueError(f"unknown random teacher {location!r}; known: {sorted(RANDOM_TEACHERS)}")
        if layer is not None:
            raise ValueError("random-clip teachers read the last layer only")
        from transformers import CLIPVisionConfig

        from vq_tokenizers.teachers.hf import random_clip_teacher

        config = CLIPVisionConfig(**RANDOM_TEACHERS[location])
        return random_clip_teacher(config, seed=RANDOM_SEED, image_size=image_size, source=spec)
    known = sorted([*_HF_KINDS, "tv-<torchvision arch>", "random-clip", "module", *OPEN_CLIP_KINDS])
    raise ValueError(f"unknown teacher kind {kind!r} in spec {spec!r}; known: {known}")
