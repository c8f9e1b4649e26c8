"""The AR model config and the named sizes (LlamaGen's GPT-B/L/XL/XXL plus tiny CPU sizes).

The config is architecture only: vocabulary (the tokenizer's codebook), class count and token grid
come from the token-shard manifest, the rest from a size preset.  It is saved inside every checkpoint,
so sampling and validation rebuild the exact model without the original command line.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator

from vq_core import StrictConfig

# name -> (n_layer, dim, n_head, multiple_of).  B..XXL are LlamaGen's class-conditional models (its
# SwiGLU width rounds to multiples of 256); the CPU sizes round to 32 so that the FFN stays ~8/3 * dim
# instead of being inflated to 256 wide.
SIZES: dict[str, tuple[int, int, int, int]] = {
    "nano": (2, 64, 4, 32),
    "tiny": (4, 128, 4, 32),
    "small": (8, 256, 8, 32),
    "B": (12, 768, 12, 256),
    "L": (24, 1024, 16, 256),
    "XL": (36, 1280, 20, 256),
    "XXL": (48, 1536, 24, 256),
}

# Parameter counts LlamaGen publishes for its c2i models (vocab 16384, 1000 classes, 256 tokens).
LLAMAGEN_PARAMS: dict[str, float] = {"B": 111e6, "L": 343e6, "XL": 775e6, "XXL": 1.4e9}


def find_multiple(n: int, k: int) -> int:
    """Smallest multiple of ``k`` that is >= ``n``."""
    return n if n % k == 0 else n + k - n % k


class ARConfig(StrictConfig):
    """Decoder-only transformer over ``[class token] + raster image tokens``."""

    vocab_size: int = Field(gt=0, description="codebook size of the tokenizer that made the token shards")
    num_classes: int = Field(gt=0, description="real classes; index num_classes is the null (CFG) class")
    grid: tuple[int, ...] = Field(description="token grid (h, w) per image, or (n,) for 1D tokenizers")
    dim: int = Field(default=768, gt=0)
    n_layer: int = Field(default=12, gt=0)
    n_head: int = Field(default=12, gt=0)
    multiple_of: int = Field(default=256, gt=0, description="SwiGLU hidden width is rounded up to this")
    ffn_dim_multiplier: float | None = Field(default=None, gt=0)
    norm_eps: float = Field(default=1e-5, gt=0)
    rope: Literal["1d", "2d"] = Field(default="2d", description="2d: half the rotary pairs follow the row, half the column")
    rope_base: float = Field(default=10000.0, gt=0)
    rope_class: Literal["identity", "zero", "sequence"] = Field(
        default="identity",
        description=(
            "rotary row of the class token (sequence position 0). 'zero': cos = sin = 0, which zeroes the "
            "class token's query and key - LlamaGen's precompute_freqs_cis(_2d), required for LlamaGen "
            "weights. 'identity': no rotation, image tokens numbered from 0 (this project's original "
            "variant, the default so that configs and checkpoints saved before the field existed keep "
            "their meaning). 'sequence' (1d only): plain 1D RoPE over the whole sequence, the class token "
            "at position 0 and image token i at position i + 1 - Hugging Face Llama, as the seed's AR "
            "recipe uses it."
        ),
    )
    """Rotary row of the class token; see ``rope.py`` for what each variant does to attention."""
    token_dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout on the input embeddings")
    attn_dropout: float = Field(default=0.0, ge=0, lt=1)
    resid_dropout: float = Field(default=0.1, ge=0, lt=1, description="dropout on the attention output")
    ffn_dropout: float = Field(default=0.1, ge=0, lt=1)
    class_dropout: float = Field(default=0.1, ge=0, lt=1, description="label -> null class rate, for CFG")
    tie_embeddings: bool = Field(default=False, description="LlamaGen keeps the output head untied")
    initializer_range: float = Field(default=0.02, gt=0)
    drop_path_rate: float = Field(
        default=0.0, ge=0, lt=1,
        description="stochastic depth (LlamaGen --drop-path-rate): block i drops each residual branch per sample with "
        "rate drop_path_rate * i / (n_layer - 1), kept branches scaled by 1 / keep",
    )
    backbone: Literal["llama", "gpt2"] = Field(
        default="llama",
        description="llama: this package's LlamaGen-style transformer; gpt2: a transformers GPT2LMHeadModel over one "
        "shared vocabulary [classes, null class, codes] (the seed's c2i_gpt2_medium), see gpt2.py",
    )
    max_positions: int = Field(default=1024, gt=0, description="gpt2 only: learned position table size (GPT-2's 1024)")
    pretrained: str | None = Field(
        default=None,
        description="gpt2 only: local transformers GPT-2 directory whose weights initialise a new model (never "
        "downloaded; a checkpoint carries its own weights, so loading one does not read it)",
    )

    @model_validator(mode="after")
    def _check_shapes(self) -> ARConfig:
        if len(self.grid) not in (1, 2) or min(self.grid) <= 0:
            raise ValueError(f"grid must be (h, w) or (n,) of positive ints, got {self.grid}")
        if self.dim % self.n_head:
            raise ValueError(f"dim {self.dim} is not divisible by n_head {self.n_head}")
        head_dim = self.dim // self.n_head
        if self.rope == "2d":
            if len(self.grid) != 2:
                raise ValueError(f"rope '2d' needs a 2D token grid, got {self.grid}; use rope='1d'")
            if head_dim % 4:
                raise ValueError(f"rope '2d' needs head_dim divisible by 4, got {head_dim} (dim/n_head)")
        elif head_dim % 2:
            raise ValueError(f"rope needs an even head_dim, got {head_dim} (dim/n_head)")
        if self.rope_class == "sequence" and self.rope != "1d":
            raise ValueError("rope_class 'sequence' numbers the raster sequence: it needs rope='1d'")
        if self.backbone == "gpt2":
            if self.seq_len > self.max_positions:
                raise ValueError(f"gpt2: {self.seq_len} sequence positions exceed max_positions {self.max_positions}")
            if self.drop_path_rate > 0:
                raise ValueError("gpt2 has no drop path; drop_path_rate is for the llama backbone")
        elif self.pretrained is not None:
            raise ValueError("pretrained initial weights are for backbone 'gpt2'")
        return self

    @property
    def seq_len(self) -> int:
        """Image tokens per sample."""
        return math.prod(self.grid)

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def ffn_hidden(self) -> int:
        """LlamaGen's SwiGLU width: 2/3 of 4*dim (same FLOPs as a 4x GELU MLP), rounded up."""
        hidden = int(2 * 4 * self.dim / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return find_multiple(hidden, self.multiple_of)


def ar_config(size: str, *, vocab_size: int, num_classes: int, grid: tuple[int, ...], **overrides: Any) -> ARConfig:
    """Config of a named size for a given token space; ``overrides`` set any other field."""
    if size not in SIZES:
        raise ValueError(f"unknown AR size {size!r}; choose one of {', '.join(SIZES)}")
    n_layer, dim, n_head, multiple_of = SIZES[size]
    fields: dict[str, Any] = {
        "n_layer": n_layer,
        "dim": dim,
        "n_head": n_head,
        "multiple_of": multiple_of,
        "vocab_size": vocab_size,
        "num_classes": num_classes,
        "grid": tuple(grid),
    }
    fields.update(overrides)
    return ARConfig.from_dict(fields, source=f"AR size {size!r}")
