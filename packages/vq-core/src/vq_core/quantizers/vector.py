"""Vector quantizer: nearest-code lookup with a straight-through gradient, and the codebook tricks
of the literature behind one config.

* **distance** ``l2`` (VQ-VAE/VQGAN) or ``cosine`` (ViT-VQGAN, LlamaGen, BEiT v2: inputs and codes are
  l2-normalised, so the quantized vector is a unit code).
* **codebook_dim**: a low-dimensional codebook with linear projections in and out (ViT-VQGAN).
* **ema**: codes follow an exponential moving average of their assigned inputs instead of a codebook
  loss (VQ-VAE-2; with cosine distance the average is renormalised, BEiT v2's "norm EMA").
* **kmeans_init**: the codebook is k-means++/Lloyd fitted on the first training batch.
* **anchor_reinit**: CVQ-VAE (Zheng & Vedaldi 2023): every step each code moves towards an anchor (the
  batch feature closest to it, or a random one) with weight ``exp(-usage * K * 10 / (1 - decay) - 1e-3)``,
  so rarely used codes are pulled back into the data while used codes barely move.
* **expire_threshold**: codes whose moving-average count per batch drops below the threshold are
  replaced by random batch vectors (the "dead code" expiry of vector-quantize-pytorch).
* **gradient**: how the gradient passes the lookup: ``ste`` (straight through), ``rotation`` (the
  rotation trick of Fifty et al. 2024) or ``diveq`` (DiVeQ: the codebook learns through the output,
  no codebook loss); see :mod:`vq_core.quantizers.gradients`.
* **freeze_codebook**: no EMA/anchor/expiry edit and no codebook gradient (k-means init still runs).
* **train_lookup**: a training step outputs the codes after this step's codebook edits
  (``updated``) or before them (``current``, as vector-quantize-pytorch and Sonnet do).

``quantize(z, mask=...)`` takes a padding mask (True = real position, shaped like the indices):
masked positions are left out of the codebook statistics, EMA, k-means init, anchor/expiry
sampling and the losses. Selecting the valid rows costs one host sync, so only pass a mask when
there is padding.

All statistics (counts, EMA sums) are all-reduced when torch.distributed runs, and every in-place
re-initialisation is broadcast from rank 0, so codebooks stay identical across DDP ranks.
Loss: ``||sg(z_q) - z||^2 * beta`` (commitment) plus ``||z_q - sg(z)||^2`` (codebook, not with EMA).
Nothing here calls ``.item()``: the forward runs on meta tensors and inside CUDA graphs.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor, nn

from vq_core.distance import CodebookSearch, nearest_code
from vq_core.kmeans import kmeans
from vq_core.quantizers.gradients import diveq, rotation_trick, straight_through
from vq_core.quantizers.layout import (
    all_reduce_,
    broadcast_,
    codes_to_layout,
    flatten_channels,
    flatten_mask,
    full_precision,
    masked_mse,
    restore_channels,
    restore_indices,
)
from vq_core.quantizers.stable_hash import ExtensibleConfig


class VectorQuantizerConfig(ExtensibleConfig):
    """Shape of the codebook and how it learns (see the module docstring for each option)."""

    added_fields = ("gradient", "diveq_variance", "codebook_weight", "freeze_codebook", "train_lookup")

    codebook_size: int = Field(gt=0, description="number of codes K")
    dim: int = Field(gt=0, description="channels of the input (and output) vectors")
    codebook_dim: int | None = Field(default=None, gt=0, description="code width when projecting to a low-dim codebook")
    distance: Literal["l2", "cosine"] = "l2"
    beta: float = Field(default=0.25, ge=0, description="commitment loss weight")
    ema: bool = Field(default=False, description="update codes by EMA of assigned inputs instead of a codebook loss")
    ema_decay: float = Field(default=0.99, gt=0, lt=1)
    kmeans_init: bool = Field(default=False, description="k-means the first training batch into the codebook")
    kmeans_iters: int = Field(default=10, ge=0)
    anchor_reinit: bool = Field(default=False, description="CVQ-VAE anchor re-initialisation of rarely used codes")
    anchor: Literal["nearest", "random"] = "nearest"
    usage_decay: float = Field(default=0.99, gt=0, lt=1, description="decay of the moving-average code usage")
    expire_threshold: float | None = Field(
        default=None, gt=0, description="replace codes whose average count per batch falls below this"
    )
    gradient: Literal["ste", "rotation", "diveq"] = Field(
        default="ste", description="gradient estimator through the lookup: straight-through, rotation trick or DiVeQ"
    )
    diveq_variance: float = Field(default=5e-3, ge=0, description="variance of the DiVeQ direction noise")
    codebook_weight: float = Field(default=1.0, ge=0, description="weight of the codebook loss ||z_q - sg(z)||^2")
    freeze_codebook: bool = Field(default=False, description="never update the codebook (no EMA, reinit or gradient)")
    train_lookup: Literal["updated", "current"] = Field(
        default="updated", description="training output reads the codebook after (updated) or before (current) this step's edits"
    )

    @model_validator(mode="after")
    def _consistent(self) -> VectorQuantizerConfig:
        if self.codebook_dim == self.dim:
            raise ValueError(f"codebook_dim equals dim ({self.dim}); leave it unset for no projection")
        if self.gradient == "diveq" and self.ema:
            raise ValueError("gradient='diveq' learns the codebook by gradient; set ema=False")
        return self

    @property
    def code_dim(self) -> int:
        return self.codebook_dim or self.dim


class VectorQuantizer(nn.Module):
    """``quantize(z) -> (z_q, indices, aux)``, ``dequantize(indices) -> z_q`` for the config's codebook."""

    def __init__(self, config: VectorQuantizerConfig) -> None:
        super().__init__()
        self.config = config
        k, d = config.codebook_size, config.code_dim
        init = torch.randn(k, d) if config.distance == "cosine" else torch.empty(k, d).uniform_(-1.0 / k, 1.0 / k)
        self.codebook = nn.Parameter(init, requires_grad=not config.ema)
        if config.codebook_dim is not None:
            self.project_in: nn.Module = nn.Linear(config.dim, d)
            self.project_out: nn.Module = nn.Linear(d, config.dim)
        else:
            self.project_in = self.project_out = nn.Identity()
        self.register_buffer("initialized", torch.tensor(not config.kmeans_init))
        self.register_buffer("usage_ema", torch.full((k,), 1.0 / k))
        if config.ema:
            self.register_buffer("ema_count", torch.ones(k))
            self.register_buffer("ema_sum", self.codebook.detach().clone())
        self._search = CodebookSearch(config.distance)

    # --- public API -------------------------------------------------------------------------------
    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    @property
    def dim(self) -> int:
        return self.config.dim

    def codes(self) -> Tensor:
        """The codebook as the search sees it: unit rows for cosine distance."""
        return F.normalize(self.codebook, dim=1) if self.config.distance == "cosine" else self.codebook

    def lookup(self, indices: Tensor) -> Tensor:
        """Rows ``indices`` (N,) of :meth:`codes` (N, code_dim), normalising only the rows picked, not all K."""
        rows = self.codebook[indices]
        return F.normalize(rows, dim=1) if self.config.distance == "cosine" else rows

    @torch.no_grad()
    def load_codebook(self, codes: Tensor) -> None:
        """Replace the codebook (K, code_dim), e.g. from a converted checkpoint or a k-means fit."""
        expected = (self.codebook_size, self.config.code_dim)
        if tuple(codes.shape) != expected:
            raise ValueError(f"codebook must have shape {expected}, got {tuple(codes.shape)}")
        self.codebook.copy_(codes)
        if self.config.ema:
            self.ema_sum.copy_(codes)
            self.ema_count.fill_(1.0)
        self.initialized.fill_(True)
        self._search.invalidate()

    def quantize(
        self, z: Tensor, *, mask: Tensor | None = None, freeze_codebook: bool | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Nearest codes for (B, dim, ...) or (N, dim) input.

        Returns the quantized tensor (value: the codes; gradient: the config's estimator; same
        shape and dtype as ``z``), indices int64 (B, ...) or (N,), and ``aux`` with ``loss``
        (scalar), ``commit_loss``, ``codebook_loss``, batch ``perplexity`` and ``usage`` (tensors,
        no host sync). ``mask`` (bool, shaped like the indices, True = real position) leaves padding
        out of every statistic and loss; ``freeze_codebook`` overrides the config for this call.
        """
        cfg = self.config
        flat, lead = flatten_channels(z, self.dim)
        valid = None if mask is None else flatten_mask(mask, lead)
        frozen = cfg.freeze_codebook if freeze_codebook is None else freeze_codebook
        with full_precision(z):
            x = self.project_in(flat.float())
            if cfg.distance == "cosine":
                x = F.normalize(x, dim=1)
            indices, counts, x_seen, idx_seen = self._assign(x, valid)
            edits = self.training and not frozen and not x.is_meta and x_seen.shape[0] > 0
            if edits and cfg.train_lookup == "updated":
                # Before the lookup below, so the autograd graph never sees an in-place codebook edit.
                self._update(x_seen, idx_seen, counts)
            quantized = self.lookup(indices)
            if edits and cfg.train_lookup == "current":
                self._update(x_seen, idx_seen, counts)  # the lookup saved no codebook view for backward
            if frozen:
                quantized = quantized.detach()
            weight = None if valid is None else valid.float()
            commit = masked_mse(x, quantized.detach(), weight)
            if cfg.ema or frozen or cfg.codebook_weight == 0:
                codebook_loss = x.new_zeros(())
            else:
                codebook_loss = masked_mse(quantized, x.detach(), weight)
            loss = cfg.beta * commit + cfg.codebook_weight * codebook_loss
            out = self.project_out(self._estimate_gradient(x, quantized))
        probs = counts / counts.sum().clamp(min=1)
        entropy = -(probs * probs.clamp(min=1e-12).log()).sum()
        aux = {
            "loss": loss,
            "commit_loss": commit.detach(),
            "codebook_loss": codebook_loss.detach(),
            "perplexity": entropy.exp().detach(),
            "usage": (counts > 0).float().mean(),
        }
        return restore_channels(out.to(z.dtype), lead), restore_indices(indices, lead), aux

    def _assign(self, x: Tensor, valid: Tensor | None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Indices of all rows, code counts of the valid rows, and the valid rows with their indices.

        k-means init (first training batch) runs here, on the valid rows only.
        """
        x_seen = x.detach() if valid is None else x.detach()[valid]
        if self.config.kmeans_init and self.training and not x.is_meta and x_seen.shape[0] and not bool(self.initialized):
            self._kmeans_init(x_seen)
        indices = self._search(x, self.codebook)
        ones = torch.ones_like(indices, dtype=torch.float32) if valid is None else valid.float()
        counts = torch.zeros(self.codebook_size, device=x.device).index_add_(0, indices, ones)
        idx_seen = indices if valid is None else indices[valid]
        return indices, counts, x_seen, idx_seen

    def _estimate_gradient(self, x: Tensor, quantized: Tensor) -> Tensor:
        gradient = self.config.gradient
        if gradient == "rotation":
            return rotation_trick(x, quantized)
        if gradient == "diveq" and self.training:
            return diveq(x, quantized, self.config.diveq_variance)
        return straight_through(x, quantized)

    def dequantize(self, indices: Tensor) -> Tensor:
        """Indices (B, ...) or (N,) -> codes in channel-first layout (B, dim, ...) or (N, dim)."""
        codes = self.project_out(self.lookup(indices.reshape(-1).long()))
        return codes_to_layout(codes, indices.shape)

    def indices_to_codes(self, indices: Tensor) -> Tensor:
        """Indices (...) -> output-space codes (..., dim), channel last (what :meth:`quantize` outputs)."""
        codes = self.project_out(self.lookup(indices.reshape(-1).long()))
        return codes.reshape(*indices.shape, self.dim)

    def forward(
        self, z: Tensor, *, mask: Tensor | None = None, freeze_codebook: bool | None = None
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        return self.quantize(z, mask=mask, freeze_codebook=freeze_codebook)

    # --- training-time codebook maintenance ---------------------------------------------------------
    @torch.no_grad()
    def _kmeans_init(self, x: Tensor) -> None:
        k = self.codebook_size
        if x.shape[0] < k:  # fewer vectors than codes: jittered copies fill the rest
            extra = x[torch.randint(x.shape[0], (k - x.shape[0],), device=x.device)]
            x = torch.cat([x, extra + 1e-3 * torch.randn_like(extra)])
        centers, _ = kmeans(x, k, metric=self.config.distance, iters=self.config.kmeans_iters)
        self.load_codebook(broadcast_(centers.to(self.codebook.dtype)))

    @torch.no_grad()
    def _update(self, x: Tensor, indices: Tensor, counts: Tensor) -> None:
        cfg = self.config
        counts = all_reduce_(counts.clone())
        total = counts.sum().clamp(min=1)
        self.usage_ema.mul_(cfg.usage_decay).add_(counts / total, alpha=1 - cfg.usage_decay)
        if cfg.ema:
            sums = all_reduce_(torch.zeros_like(self.ema_sum).index_add_(0, indices, x))
            self.ema_count.mul_(cfg.ema_decay).add_(counts, alpha=1 - cfg.ema_decay)
            self.ema_sum.mul_(cfg.ema_decay).add_(sums, alpha=1 - cfg.ema_decay)
            codes = self.ema_sum / self._smoothed_counts()[:, None]
            self.codebook.copy_(F.normalize(codes, dim=1) if cfg.distance == "cosine" else codes)
        if cfg.anchor_reinit:
            anchors = self._anchors(x)
            weight = torch.exp(-(self.usage_ema * self.codebook_size * 10) / (1 - cfg.usage_decay) - 1e-3)[:, None]
            self.codebook.mul_(1 - weight).add_(broadcast_(anchors) * weight)
        if cfg.expire_threshold is not None:
            dead = self.usage_ema * total < cfg.expire_threshold
            replacement = broadcast_(x[torch.randint(x.shape[0], (self.codebook_size,), device=x.device)])
            self.codebook.copy_(torch.where(dead[:, None], replacement, self.codebook))
            self.usage_ema.copy_(torch.where(dead, 1.0 / self.codebook_size, self.usage_ema))
            if cfg.ema:  # a revived code starts as if it had held one vector
                self.ema_count.copy_(torch.where(dead, 1.0, self.ema_count))
        if cfg.ema and (cfg.anchor_reinit or cfg.expire_threshold is not None):
            # keep the EMA sums consistent with the edited codes, or the next EMA step would undo the edit
            self.ema_sum.copy_(self.codebook * self._smoothed_counts()[:, None])
        self._search.invalidate()

    def _smoothed_counts(self) -> Tensor:
        """EMA code counts with Laplace smoothing (no code divides by zero), summing to the same total."""
        n = self.ema_count.sum()
        return (self.ema_count + 1e-5) / (n + self.codebook_size * 1e-5) * n

    def _anchors(self, x: Tensor) -> Tensor:
        """One batch feature per code: its nearest feature (``nearest``) or a random one."""
        if self.config.anchor == "random":
            return x[torch.randint(x.shape[0], (self.codebook_size,), device=x.device)]
        return x[nearest_code(self.codes().detach(), x, metric=self.config.distance)]
