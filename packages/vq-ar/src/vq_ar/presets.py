"""Named AR recipes: a size plus the model, training and sampling fields of one upstream configuration.

A size (``config.SIZES``) is only layers x width x heads.  A preset is everything a published run
set: architecture fields (rotary variant, dropouts), the optimizer and schedule, the batch and step
count, the sampling defaults, and the token space it was trained on (which a user's token shards
replace).  Each preset names the upstream file(s) it reproduces, and ``tests/test_presets.py``
compares every value with that file.

Upstream files (read, not copied):

* LlamaGen GPT-B/L/XL/XXL c2i - FoundationVision/LlamaGen ``autoregressive/models/gpt.py`` (sizes,
  ``ModelArgs`` dropouts, ``precompute_freqs_cis_2d`` with zero class rows),
  ``autoregressive/train/train_c2i.py`` (AdamW lr 1e-4, betas (0.9, 0.95), weight decay 0.05 on
  matrices, grad norm 1.0, constant lr, 300 epochs at global batch 256), and
  ``autoregressive/sample/sample_c2i.py`` (cfg 4.0, top-k 2000, top-p 1.0, temperature 1.0,
  cfg interval -1).  ``GETTING_STARTED.md`` evaluates FID with other values (top-k 0, cfg 2.0 for B/L,
  1.75 for XL/XXL); pass ``--cfg``/``--top-k`` for those.
* The seed's AR recipe - magic-research/vector_quantization ``configs/ar/c2i_llama_medium_imagenet_ddp.py``
  and ``configs/ar/c2i_llama_medium_cfg_imagenet_ddp.py`` (= the former + ``configs/ar/cfg.py``), which
  inherit ``configs/ar/interface.py`` (batch 96 in total, 256 px), ``configs/ar/runner.py`` (AdamW lr
  1e-4, betas (0.9, 0.98), weight decay 0.2 on every transformer parameter, eps 1e-6, CosineAnnealingLR
  to 0 over 260k iterations, no gradient clipper), ``configs/ar/transformers/llama.py`` (Hugging Face
  Llama "medium": 24 layers, 1024 wide, 16 heads, intermediate 2816, rms eps 1e-5, no dropout, 1D RoPE
  over the sequence), ``configs/ar/x2i.py`` (``TopKTopPSampler``: top-k 600, top-p 0.92,
  temperature 1.0, defaults of ``vq/tasks/sequence_modeling/models/samplers.py``) and, for ``_cfg``,
  ``configs/ar/cfg.py`` (label dropout 0.1, CFG alpha 1.75 on every token).

* The seed's GPT-2 recipe - ``configs/ar/c2i_gpt2_medium(_cfg)_imagenet_ddp.py`` with
  ``configs/ar/transformers/gpt2.py`` (``GPT2LMHeadModel.from_pretrained('gpt2-medium')``, its config's
  dropouts 0.1, LayerNorm eps 1e-5, 1024 positions, tied head) and ``vq/algorithms/ar/transformers/hf.py``
  (``resize_token_embeddings`` to classes + null class + codes); the same runner, interface and sampler
  files as the Llama recipe.  The local gpt2-medium directory is given with ``pretrained``.

Known differences that no field here can express: the seed's Llama shares one embedding table and
one output head between class and image tokens, so its training softmax also spans the 1000 (+1)
class ids (sampling is restricted to image ids, as here); and it tokenizes images online with
Resize 256 + RandomCrop + flip, which is the token shards' job here (``vq-tok tokenize``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from vq_ar.config import ARConfig, ar_config
from vq_ar.sampling import SamplingConfig
from vq_ar.training import TrainConfig

LLAMAGEN = "FoundationVision/LlamaGen"
SEED = "magic-research/vector_quantization"

# 300 epochs x int(1,281,167 ImageNet train images / 256) = 300 x 5004 steps (train_c2i.py, drop_last).
LLAMAGEN_STEPS = 300 * (1_281_167 // 256)


@dataclass(frozen=True)
class ARPreset:
    """A size plus every model, training and sampling field an upstream configuration sets."""

    name: str
    size: str
    sources: tuple[str, ...]
    """Upstream ``repo:path`` files whose values this preset reproduces."""
    model: Mapping[str, Any]
    """ARConfig fields over the size's layers/width/heads."""
    train: Mapping[str, Any]
    """TrainConfig fields."""
    sampling: Mapping[str, Any]
    """SamplingConfig fields (the upstream sampling script's defaults)."""
    token_space: tuple[int, int, tuple[int, ...]]
    """(vocab, classes, grid) of the published run; a user's token shards replace it."""
    description: str = ""

    def model_config(
        self, *, vocab_size: int | None = None, num_classes: int | None = None, grid: tuple[int, ...] | None = None
    ) -> ARConfig:
        """The architecture for a token space (default: the published one)."""
        vocab, classes, published_grid = self.token_space
        return ar_config(
            self.size,
            vocab_size=vocab if vocab_size is None else vocab_size,
            num_classes=classes if num_classes is None else num_classes,
            grid=published_grid if grid is None else tuple(grid),
            **self.model,
        )

    def train_config(self, **overrides: Any) -> TrainConfig:
        """The optimisation settings; ``overrides`` change any field (e.g. a shorter run)."""
        return TrainConfig.from_dict({**self.train, **overrides}, source=f"AR preset {self.name!r}")

    def sampling_config(self, **overrides: Any) -> SamplingConfig:
        return SamplingConfig.from_dict({**self.sampling, **overrides}, source=f"AR preset {self.name!r}")

    def resolved(self, **token_space: Any) -> dict[str, Any]:
        """Every field of the three configs, as ``vq-ar sizes --show`` prints them."""
        return {
            "name": self.name,
            "size": self.size,
            "sources": list(self.sources),
            "description": self.description,
            "model": self.model_config(**token_space).model_dump(mode="json"),
            "train": self.train_config().model_dump(mode="json"),
            "sampling": self.sampling_config().model_dump(mode="json"),
        }


def _frozen(**fields: Any) -> Mapping[str, Any]:
    return MappingProxyType(fields)


LLAMAGEN_MODEL = _frozen(  # gpt.py ModelArgs defaults and train_c2i.py's --dropout-p / --token-dropout-p 0.1
    rope="2d",
    rope_class="zero",
    rope_base=10000.0,
    norm_eps=1e-5,
    token_dropout=0.1,
    attn_dropout=0.0,
    resid_dropout=0.1,
    ffn_dropout=0.1,
    class_dropout=0.1,
    tie_embeddings=False,
    initializer_range=0.02,
)
_LLAMAGEN_TRAIN = _frozen(
    steps=LLAMAGEN_STEPS,
    batch_size=256,
    lr=1e-4,
    min_lr_ratio=1.0,  # train_c2i.py has no scheduler: a constant learning rate
    warmup_steps=0,
    weight_decay=0.05,
    weight_decay_on="matrices",
    betas=(0.9, 0.95),
    eps=1e-8,
    grad_clip=1.0,
    precision="auto",  # bf16 autocast on CUDA, LlamaGen's --mixed-precision bf16
    ckpt_every=5000,
    log_every=100,
)
_LLAMAGEN_SAMPLING = _frozen(cfg_scale=4.0, cfg_interval=-1, top_k=2000, top_p=1.0, temperature=1.0)
_LLAMAGEN_SOURCES = (
    f"{LLAMAGEN}:autoregressive/models/gpt.py",
    f"{LLAMAGEN}:autoregressive/train/train_c2i.py",
    f"{LLAMAGEN}:autoregressive/sample/sample_c2i.py",
)
# The released c2i checkpoints: B and L at 256 px (16x16 tokens), XL and XXL only at 384 px (24x24).
_LLAMAGEN_GRIDS = {"B": 16, "L": 16, "XL": 24, "XXL": 24}

_SEED_MODEL = _frozen(
    rope="1d",
    rope_class="sequence",
    rope_base=10000.0,
    norm_eps=1e-5,
    token_dropout=0.0,
    attn_dropout=0.0,
    resid_dropout=0.0,
    ffn_dropout=0.0,
    class_dropout=0.0,
    tie_embeddings=False,
    initializer_range=0.02,
)
_SEED_TRAIN = _frozen(
    steps=260_000,
    batch_size=96,
    lr=1e-4,
    min_lr_ratio=0.0,
    warmup_steps=0,
    weight_decay=0.2,
    weight_decay_on="all",
    betas=(0.9, 0.98),
    eps=1e-6,
    grad_clip=0.0,
    precision="auto",
    ckpt_every=10_000,
    log_every=50,
)
_SEED_SAMPLING = _frozen(cfg_scale=1.0, cfg_interval=-1, top_k=600, top_p=0.92, temperature=1.0)
_SEED_SOURCES = (
    f"{SEED}:configs/ar/c2i_llama_medium_imagenet_ddp.py",
    f"{SEED}:configs/ar/interface.py",
    f"{SEED}:configs/ar/runner.py",
    f"{SEED}:configs/ar/transformers/llama.py",
    f"{SEED}:configs/ar/x2i.py",
    f"{SEED}:vq/tasks/sequence_modeling/models/samplers.py",
)
# The seed's headline tokenizer: VQ-KD (CLIP teacher), 8192 codes, 16x16 tokens at 256 px.
_SEED_TOKENS = (8192, 1000, (16, 16))


def _llamagen(size: str) -> ARPreset:
    grid = _LLAMAGEN_GRIDS[size]
    release = f"c2i_{size}_{grid * 16}.pt"
    return ARPreset(
        name=f"llamagen_gpt_{size.lower()}",
        size=size,
        sources=_LLAMAGEN_SOURCES,
        model=LLAMAGEN_MODEL,
        train=_LLAMAGEN_TRAIN,
        sampling=_LLAMAGEN_SAMPLING,
        token_space=(16384, 1000, (grid, grid)),
        description=f"LlamaGen GPT-{size} c2i (release {release}, VQ-16 tokens {grid}x{grid})",
    )


PRESETS: dict[str, ARPreset] = {p.name: p for p in (_llamagen(s) for s in ("B", "L", "XL", "XXL"))}
# Llama "medium" (24 layers, 1024 wide, 16 heads, FFN 2816) is LlamaGen's GPT-L shape.
PRESETS["c2i_llama_medium"] = ARPreset(
    name="c2i_llama_medium",
    size="L",
    sources=_SEED_SOURCES,
    model=_SEED_MODEL,
    train=_SEED_TRAIN,
    sampling=_SEED_SAMPLING,
    token_space=_SEED_TOKENS,
    description="the seed's AR recipe without guidance: Llama medium, 1D RoPE, no dropout",
)
PRESETS["c2i_llama_medium_cfg"] = ARPreset(
    name="c2i_llama_medium_cfg",
    size="L",
    sources=(f"{SEED}:configs/ar/c2i_llama_medium_cfg_imagenet_ddp.py", f"{SEED}:configs/ar/cfg.py", *_SEED_SOURCES),
    model=_frozen(**{**_SEED_MODEL, "class_dropout": 0.1}),
    train=_SEED_TRAIN,
    sampling=_frozen(**{**_SEED_SAMPLING, "cfg_scale": 1.75}),
    token_space=_SEED_TOKENS,
    description="the seed's AR recipe (the paper's): label dropout 0.1, CFG 1.75, top-k 600 / top-p 0.92",
)


# GPT-2 medium is the same 24 x 1024 x 16 shape; gpt2-medium's own config sets its dropouts (0.1 each),
# LayerNorm eps 1e-5, 1024 learned positions and the tied head.
_SEED_GPT2_MODEL = _frozen(
    backbone="gpt2",
    rope="1d",
    rope_class="sequence",
    max_positions=1024,
    norm_eps=1e-5,
    token_dropout=0.1,
    attn_dropout=0.1,
    resid_dropout=0.1,
    ffn_dropout=0.1,
    class_dropout=0.0,
    tie_embeddings=True,
    initializer_range=0.02,
)
_SEED_GPT2_SOURCES = (
    f"{SEED}:configs/ar/c2i_gpt2_medium_imagenet_ddp.py",
    f"{SEED}:configs/ar/transformers/gpt2.py",
    f"{SEED}:vq/algorithms/ar/transformers/gpt.py",
    *(s for s in _SEED_SOURCES if not s.endswith(("llama_medium_imagenet_ddp.py", "llama.py"))),
)
PRESETS["c2i_gpt2_medium"] = ARPreset(
    name="c2i_gpt2_medium",
    size="L",
    sources=_SEED_GPT2_SOURCES,
    model=_SEED_GPT2_MODEL,
    train=_SEED_TRAIN,
    sampling=_SEED_SAMPLING,
    token_space=_SEED_TOKENS,
    description="the seed's GPT-2 AR without guidance: transformers GPT-2 medium initialised from a local "
    "gpt2-medium (--set pretrained=DIR), shared class/code vocabulary",
)
PRESETS["c2i_gpt2_medium_cfg"] = ARPreset(
    name="c2i_gpt2_medium_cfg",
    size="L",
    sources=(f"{SEED}:configs/ar/c2i_gpt2_medium_cfg_imagenet_ddp.py", f"{SEED}:configs/ar/cfg.py", *_SEED_GPT2_SOURCES),
    model=_frozen(**{**_SEED_GPT2_MODEL, "class_dropout": 0.1}),
    train=_SEED_TRAIN,
    sampling=_frozen(**{**_SEED_SAMPLING, "cfg_scale": 1.75}),
    token_space=_SEED_TOKENS,
    description="the seed's GPT-2 AR with guidance: label dropout 0.1, CFG 1.75, top-k 600 / top-p 0.92",
)


def get_preset(name: str) -> ARPreset:
    """The preset called ``name``; the error lists the known ones."""
    if name not in PRESETS:
        raise KeyError(f"unknown AR preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
