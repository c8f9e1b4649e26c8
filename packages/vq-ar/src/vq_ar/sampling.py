"""Token sampling: classifier-free guidance, temperature, top-k / top-p, KV-cached or uncached.

Guidance runs the conditional and the unconditional (null-class) sequences as one batch of 2B rows
and mixes their logits, ``uncond + scale * (cond - uncond)``; the token drawn for the conditional row
is fed to both halves.  Randomness comes only from the caller's ``torch.Generator`` and is drawn once
per generated token for the B conditional rows, so the cached and the uncached paths, and guided
sampling at scale 1 and plain conditional sampling, consume the same random numbers and agree token
for token.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field

from vq_ar.model import ARTransformer
from vq_core import StrictConfig
from vq_core.progress import progress


class SamplingConfig(StrictConfig):
    """How to turn logits into tokens (LlamaGen's defaults: cfg 1.0 here, 1.75-4 for ImageNet)."""

    cfg_scale: float = Field(default=1.0, ge=0, description="1 = no guidance")
    cfg_schedule: Literal["constant", "linear"] = Field(
        default="constant", description="linear: scale ramps from ~1 at the first token to cfg_scale at the last"
    )
    cfg_interval: int = Field(
        default=-1,
        ge=-1,
        description=(
            "LlamaGen's --cfg-interval k: guide image tokens 0..k+1 only, the rest take the conditional "
            "logits (-1: guide all). LlamaGen guides the prefill token and decode steps i <= k, and "
            "decode step i draws token i + 1"
        ),
    )
    temperature: float = Field(default=1.0, gt=0)
    top_k: int = Field(default=0, ge=0, description="0 = off")
    top_p: float = Field(default=1.0, gt=0, le=1, description="1 = off")

    @property
    def guided(self) -> bool:
        return self.cfg_scale != 1.0

    def guides(self, index: int) -> bool:
        """Whether image token ``index`` is guided: all tokens, or LlamaGen's interval 0..cfg_interval+1."""
        return self.guided and (self.cfg_interval < 0 or index <= self.cfg_interval + 1)

    def scale_at(self, index: int, num_tokens: int) -> float:
        """Guidance scale for image token ``index`` of ``num_tokens`` (1 outside the cfg interval)."""
        if not self.guides(index):
            return 1.0
        if self.cfg_schedule == "linear":
            return 1.0 + (self.cfg_scale - 1.0) * (index + 1) / num_tokens
        return self.cfg_scale


def filter_top_k(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Set every logit below the k-th largest of its row to -inf (k <= 0 or >= vocab: unchanged)."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    threshold = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < threshold, float("-inf"))


def filter_top_p(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep a token iff the probability mass of the tokens ranked above it is <= p.

    This keeps the most likely tokens up to and including the first whose cumulative mass exceeds
    ``p`` (always at least the most likely token).  The mass is LlamaGen's (and Hugging Face's)
    ``cumsum(softmax(sorted))`` shifted by one rank, computed the same way so that the kept set agrees
    with theirs to the last bit, not only up to rounding.
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = torch.zeros_like(cumulative, dtype=torch.bool)
    remove_sorted[..., 1:] = cumulative[..., :-1] > p
    remove = remove_sorted.scatter(-1, order, remove_sorted)
    return logits.masked_fill(remove, float("-inf"))


def next_token_probs(logits: torch.Tensor, sampling: SamplingConfig) -> torch.Tensor:
    """Temperature, then top-k, then top-p, then softmax (LlamaGen's order)."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / sampling.temperature
    logits = filter_top_p(filter_top_k(logits, sampling.top_k), sampling.top_p)
    return F.softmax(logits, dim=-1)


def _mix_and_draw(
    logits: torch.Tensor, scale: float | None, sampling: SamplingConfig, generator: torch.Generator | None
) -> torch.Tensor:
    """One token per conditional row from (rows, vocab) logits.

    ``scale`` None: the rows are unguided.  ``scale`` 1 on guided (2B) rows: the conditional half as
    it is (outside the cfg interval), not ``uncond + 1 * (cond - uncond)``, which differs by rounding.
    """
    if scale is not None:
        cond, uncond = logits.chunk(2)
        logits = cond if scale == 1.0 else uncond + scale * (cond - uncond)
    return torch.multinomial(next_token_probs(logits, sampling), 1, generator=generator)[:, 0]


@torch.inference_mode()
def generate(
    model: ARTransformer,
    labels: torch.Tensor,
    *,
    sampling: SamplingConfig | None = None,
    generator: torch.Generator | None = None,
    prefix: torch.Tensor | None = None,
    use_cache: bool = True,
    guided: bool | None = None,
    cfg_scale: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    temperature: float | None = None,
) -> torch.Tensor:
    """Sample image tokens (B, seq_len) for class ``labels`` (B,), in raster order.

    ``generate(model, labels, cfg_scale=4.0, top_k=1000)`` is short for
    ``sampling=SamplingConfig(cfg_scale=4.0, top_k=1000)``; keywords given override ``sampling``'s fields
    (validated alike, so ``top_p=0`` is refused as the config refuses it).

    ``prefix`` (B, P) fixes the first P tokens (half-prefix completion); the rest are sampled.
    ``use_cache=False`` recomputes the whole prefix for every token (the reference the cache is
    tested and benchmarked against).  ``guided`` forces the 2B-row guidance path on or off; by
    default it runs when ``cfg_scale != 1``.  The generator must live on the model's device.
    """
    sampling = sampling or SamplingConfig()
    given = {"cfg_scale": cfg_scale, "top_k": top_k, "top_p": top_p, "temperature": temperature}
    if any(v is not None for v in given.values()):
        sampling = SamplingConfig(**{**sampling.model_dump(), **{k: v for k, v in given.items() if v is not None}})
    guided = sampling.guided if guided is None else guided
    device = model.tok_embeddings.weight.device
    n = model.seq_len
    batch = labels.shape[0]
    labels = labels.to(device=device, dtype=torch.long)
    if guided:
        labels = torch.cat([labels, torch.full_like(labels, model.null_class)])
    tokens = torch.zeros(batch, n, dtype=torch.long, device=device)
    first = 0
    if prefix is not None:
        first = prefix.shape[1]
        if prefix.shape[0] != batch or not 0 <= first < n:
            raise ValueError(f"prefix must be (B={batch}, P<{n}) tokens, got {tuple(prefix.shape)}")
        tokens[:, :first] = prefix.to(device)

    def rows(t: torch.Tensor) -> torch.Tensor:
        return torch.cat([t, t]) if guided else t

    def draw(logits: torch.Tensor, index: int) -> torch.Tensor:
        scale = sampling.scale_at(index, n) if guided else None
        return _mix_and_draw(logits[:, -1], scale, sampling, generator)

    was_training = model.training
    model.eval()
    try:
        if use_cache:
            cache = model.new_cache(labels.shape[0])
            logits = model(labels, rows(tokens[:, :first]), cache=cache, last_only=True)
            for i in progress(range(first, n), desc="sample", unit="tok", leave=False):
                tokens[:, i] = draw(logits, i)
                if i + 1 < n:  # token i sits at sequence position i + 1 (after the class token)
                    logits = model(None, rows(tokens[:, i : i + 1]), cache=cache, start=i + 1, last_only=True)
        else:
            for i in progress(range(first, n), desc="sample", unit="tok", leave=False):
                tokens[:, i] = draw(model(labels, rows(tokens[:, :i]), last_only=True), i)
    finally:
        model.train(was_training)
    return tokens
