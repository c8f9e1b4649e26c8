"""LlamaGen-style decoder-only transformer over ``[class token] + raster image tokens``.

Pre-norm blocks with RMSNorm, SwiGLU feed-forward, rotary positions (1D or 2D), no biases, and an
(untied by default) output head.  The class label is embedded as the first sequence element; index
``num_classes`` is the null class used for classifier-free guidance.  Position ``j`` of the output
predicts image token ``j``, so a full training sequence is the class token plus tokens ``[:-1]``.

One ``forward`` serves training, uncached sampling (recompute the whole prefix) and cached sampling
(write this step's keys/values into a :class:`~vq_ar.kv_cache.KVCache` at ``start``).
"""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import nn

from vq_ar.config import ARConfig
from vq_ar.kv_cache import KVCache
from vq_ar.rope import apply_rope, rope_table
from vq_core import ConfigError


class RMSNorm(nn.Module):
    """Root-mean-square norm, computed in float32 so bf16 activations do not lose the scale."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight


class FeedForward(nn.Module):
    """SwiGLU: ``w2(silu(w1 x) * w3 x)``."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.w1 = nn.Linear(config.dim, config.ffn_hidden, bias=False)
        self.w3 = nn.Linear(config.dim, config.ffn_hidden, bias=False)
        self.w2 = nn.Linear(config.ffn_hidden, config.dim, bias=False)
        self.dropout = nn.Dropout(config.ffn_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.w2(F.silu(self.w1(x)) * self.w3(x)))


class Attention(nn.Module):
    """Multi-head causal self-attention with rotary positions and an optional static KV cache."""

    def __init__(self, config: ARConfig, layer: int) -> None:
        super().__init__()
        self.layer = layer
        self.n_head = config.n_head
        self.head_dim = config.head_dim
        self.attn_dropout = config.attn_dropout
        self.wqkv = nn.Linear(config.dim, 3 * config.dim, bias=False)
        self.wo = nn.Linear(config.dim, config.dim, bias=False)
        self.resid_dropout = nn.Dropout(config.resid_dropout)

    def forward(self, x: torch.Tensor, rope: torch.Tensor, cache: KVCache | None, start: int) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.wqkv(x).view(batch, length, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, rope), apply_rope(k, rope)
        mask, causal = None, length > 1
        if cache is not None:
            k, v = cache.write(self.layer, start, k, v)
            if start > 0 and length > 1:
                # Queries sit at start..start+L-1 and may see every key up to their own position.
                query_pos = torch.arange(start, start + length, device=x.device)
                mask = torch.arange(start + length, device=x.device)[None, :] <= query_pos[:, None]
                causal = False
            elif start > 0:
                causal = False  # one new token attends to the whole filled prefix
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, dropout_p=self.attn_dropout if self.training else 0.0
        )
        return self.resid_dropout(self.wo(out.transpose(1, 2).reshape(batch, length, dim)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for whole samples with probability ``rate``, scale the rest by 1/keep."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask.div_(keep)


def drop_path_rates(config: ARConfig) -> list[float]:
    """LlamaGen's schedule: ``linspace(0, drop_path_rate, n_layer)``, 0 for the first block."""
    return torch.linspace(0, config.drop_path_rate, config.n_layer, device="cpu").tolist()  # float32, as LlamaGen


class Block(nn.Module):
    """Pre-norm transformer block; ``drop_path`` > 0 drops each residual branch (independently) per sample."""

    def __init__(self, config: ARConfig, layer: int, drop_path: float = 0.0) -> None:
        super().__init__()
        self.attention_norm = RMSNorm(config.dim, config.norm_eps)
        self.attention = Attention(config, layer)
        self.ffn_norm = RMSNorm(config.dim, config.norm_eps)
        self.feed_forward = FeedForward(config)
        self.drop_path = drop_path

    def forward(self, x: torch.Tensor, rope: torch.Tensor, cache: KVCache | None, start: int) -> torch.Tensor:
        x = x + drop_path(self.attention(self.attention_norm(x), rope, cache, start), self.drop_path, self.training)
        return x + drop_path(self.feed_forward(self.ffn_norm(x)), self.drop_path, self.training)


class ARTransformer(nn.Module):
    """Class-conditional AR model over image tokens, built from an :class:`ARConfig`."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        self.config = config
        self.class_embedding = nn.Embedding(config.num_classes + 1, config.dim)
        self.tok_embeddings = nn.Embedding(config.vocab_size, config.dim)
        self.tok_dropout = nn.Dropout(config.token_dropout)
        if config.backbone != "llama":
            raise ValueError(f"ARTransformer is the llama backbone; build {config.backbone!r} with build_ar_model")
        rates = drop_path_rates(config)
        self.layers = nn.ModuleList(Block(config, i, rates[i]) for i in range(config.n_layer))
        self.norm = RMSNorm(config.dim, config.norm_eps)
        self.output = nn.Linear(config.dim, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight
        # Rotary tables live outside the state dict and outside .to(dtype): a bf16 copy of cos/sin
        # would lose the angle precision, so they are made per (device, float32|float64) on first use.
        self._rope: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self.reset_parameters()

    @property
    def null_class(self) -> int:
        """Label of the unconditional (dropped) class."""
        return self.config.num_classes

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def reset_parameters(self) -> None:
        """LlamaGen's init: N(0, 0.02) for linears and embeddings, zero output head (when untied)."""
        std = self.config.initializer_range
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=std)
        if not self.config.tie_embeddings:
            nn.init.zeros_(self.output.weight)

    def _rope_table(self, h: torch.Tensor) -> torch.Tensor:
        dtype = torch.float64 if h.dtype == torch.float64 else torch.float32
        key = (h.device, dtype)
        if key not in self._rope:
            # Built outside inference mode even when the first call is sampling (generate runs under
            # torch.inference_mode): an inference tensor cached here could not be saved for backward
            # by a later training step on the same model.
            with torch.inference_mode(False), torch.no_grad():
                self._rope[key] = rope_table(self.config).to(device=h.device, dtype=dtype)
        return self._rope[key]

    def new_cache(self, batch: int, *, dtype: torch.dtype | None = None) -> KVCache:
        """A KV cache long enough for a whole sample: class token + seq_len - 1 fed tokens."""
        param = self.tok_embeddings.weight
        return KVCache(
            self.config.n_layer,
            batch,
            self.config.n_head,
            self.seq_len,
            self.config.head_dim,
            dtype=dtype or param.dtype,
            device=param.device,
        )

    def forward(
        self,
        labels: torch.Tensor | None,
        tokens: torch.Tensor | None = None,
        *,
        cache: KVCache | None = None,
        start: int = 0,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Logits (B, L, vocab), float32 (float64 for a float64 model), for the sequence slice starting at ``start``.

        With ``labels`` the slice begins with the class token (``start`` must be 0) followed by
        ``tokens`` (B, T); without, it is ``tokens`` at sequence positions ``start..`` (``start`` >= 1,
        after the class token), which needs a ``cache`` holding the earlier positions.
        """
        parts = []
        if labels is not None:
            if start != 0:
                raise ValueError("the class token sits at sequence position 0; pass labels only with start=0")
            parts.append(self.class_embedding(labels)[:, None])
        elif cache is None or start == 0:
            raise ValueError("a slice without the class token continues a cached prefix: pass cache and start>=1")
        if tokens is not None and tokens.shape[1] > 0:
            parts.append(self.tok_embeddings(tokens))
        if not parts:
            raise ValueError("nothing to run: give labels and/or tokens")
        h = self.tok_dropout(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
        end = start + h.shape[1]
        if end > self.seq_len:
            raise ValueError(f"sequence positions up to {end} exceed the model's {self.seq_len} (class + tokens[:-1])")
        rope = self._rope_table(h)[:, start:end]
        for layer in self.layers:
            h = layer(h, rope, cache, start)
        if last_only:
            h = h[:, -1:]
        logits = self.output(self.norm(h))
        return logits if logits.dtype == torch.float64 else logits.float()


def build_ar_model(config: ARConfig, *, load_pretrained: bool = True) -> nn.Module:
    """The model ``config.backbone`` names: :class:`ARTransformer`, or :class:`~vq_ar.gpt2.GPT2AR` (initialised
    from ``config.pretrained`` when given and ``load_pretrained``; checkpoints load their own weights)."""
    if config.backbone == "gpt2":
        if importlib.util.find_spec("transformers") is None:  # an extra: vq-ar needs it for this backbone alone
            raise ConfigError("backbone 'gpt2' (field backbone) runs on transformers, which is not installed; "
                              "pip install 'vq-ar[gpt2]', or use backbone 'llama'")
        from vq_ar.gpt2 import GPT2AR

        model = GPT2AR(config)
        if load_pretrained and config.pretrained is not None:
            model.load_pretrained(config.pretrained)
        return model
    return ARTransformer(config)


def count_parameters(config: ARConfig) -> int:
    """Parameter count of a config, built on the meta device (no memory is allocated)."""
    with torch.device("meta"):
        model = build_ar_model(config, load_pretrained=False)
    return sum(p.numel() for p in model.parameters())
