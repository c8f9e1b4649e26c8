"""vector-quantize-pytorch's face on vq-core's quantizers: change the import line, keep the code.

``from vq_core.vqpt import VectorQuantize, FSQ, LFQ, ResidualVQ`` gives classes that take
vector-quantize-pytorch's keyword arguments, accept its layouts ((B, N, D) by default,
``accept_image_fmap=True`` for (B, C, H, W), ``channel_last=False`` for (B, D, N), a single (B, D)
token) and return what it returns: ``(quantized, indices, loss)`` for VQ/LFQ/residual VQ and
``(codes, indices)`` for FSQ.  ``return_aux=True`` appends vq-core's aux dict (``loss``,
``commit_loss``, ``usage``, ``perplexity``, ...).

Each class is a subclass of the config-built vq-core quantizer, so the keywords only build the
config (``VectorQuantize(...).config`` is a :class:`VectorQuantizerConfig` that checkpoints save
and tokenizers accept), and each also takes that config instead of keywords:
``VectorQuantize(VectorQuantizerConfig(...))``.  The config-built ``vq_core.FSQ`` (``FSQ(FSQConfig)``,
channel-first, ``(z_q, indices, aux)``) is unchanged; the keyword form lives here so that the two
never share a name in one namespace.

Keywords that change the math and that vq-core does not implement raise ``TypeError`` naming the
argument; keywords left at vector-quantize-pytorch's default are accepted.  The migration table in
``packages/vq-core/README.md`` lists every argument.
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vq_core.quantizers.fsq import FSQ as _FSQ
from vq_core.quantizers.fsq import FSQConfig
from vq_core.quantizers.lfq import LFQ as _LFQ
from vq_core.quantizers.lfq import LFQConfig
from vq_core.quantizers.residual import ResidualVQ as _ResidualVQ
from vq_core.quantizers.residual import ResidualVQConfig
from vq_core.quantizers.vector import VectorQuantizer, VectorQuantizerConfig

__all__ = ["FSQ", "LFQ", "LossBreakdown", "ResidualVQ", "VectorQuantize", "vector_quantizer_config"]

LossBreakdown = namedtuple("LossBreakdown", ["commitment", "codebook_diversity", "orthogonal_reg", "inplace_optimize"])
"""vector-quantize-pytorch's ``return_loss_breakdown`` tuple; only ``commitment`` can be non-zero here."""

# vector-quantize-pytorch arguments vq-core does not implement, with the value that switches them off.
_VQ_NEUTRAL: dict[str, Any] = {
    "heads": 1,
    "separate_codebook_per_head": False,
    "layernorm_after_project_in": False,
    "commitment_use_cross_entropy_loss": False,
    "orthogonal_reg_weight": 0.0,
    "orthogonal_reg_active_codes_only": False,
    "orthogonal_reg_max_codes": None,
    "codebook_diversity_loss_weight": 0.0,
    "codebook_diversity_temperature": 100.0,
    "stochastic_sample_codes": False,
    "sample_codebook_temp": 1.0,
    "straight_through": False,
    "sync_affine_param": False,
    "vq_bridge": None,
    "manual_ema_update": False,
    "in_place_codebook_optimizer": None,
    "manual_in_place_optimizer_update": False,
    "affine_param": False,
    "affine_param_batch_decay": 0.99,
    "affine_param_codebook_decay": 0.9,
    "sync_update_v": 0.0,
    "route_gradients_to_input": True,
    "eps": 1e-5,
    "sync_kmeans": True,
}
_RVQ_NEUTRAL: dict[str, Any] = {
    "shared_codebook": False,
    "diveq": False,
    "quantize_dropout": False,
    "quantize_dropout_cutoff_index": 0,
    "quantize_dropout_multiple_of": 1,
    "implicit_neural_codebook": False,
    "mlp_kwargs": {},
    "beam_size": None,
    "eval_beam_size": None,
    "beam_score_quantizer_weights": None,
    "quant_grad_frac": 0.0,
}
_FSQ_NEUTRAL: dict[str, Any] = {
    "scale": None,
    "allowed_dtypes": (torch.float32, torch.float64),
    "force_quantization_f32": True,
    "preserve_symmetry": False,
    "noise_dropout": 0.0,
    "bound_hard_clamp": False,
    "orthogonal_rotation": False,
}
_LFQ_NEUTRAL: dict[str, Any] = {
    "codebook_scale": 1.0,
    "frac_per_sample_entropy": 1.0,
    "soft_clamp_input_value": None,
    "cosine_sim_project_in": False,
    "cosine_sim_project_in_scale": None,
    "experimental_softplus_entropy_loss": False,
    "entropy_loss_offset": 5.0,
    "spherical": False,
    "force_quantization_f32": True,
    "orthogonal_rotation": False,
}


def _reject_unsupported(owner: str, given: dict[str, Any], neutral: dict[str, Any]) -> None:
    """Raise for an unknown keyword or a known one set away from the value that switches it off."""
    unknown = sorted(k for k in given if k not in neutral)
    if unknown:
        raise TypeError(f"{owner}() got unexpected keyword argument(s) {', '.join(unknown)}")
    active = sorted(k for k, v in given.items() if not _same(v, neutral[k]))
    if active:
        raise TypeError(
            f"{owner}: vector-quantize-pytorch option(s) {', '.join(active)} are not supported by vq-core; "
            "see the migration table in packages/vq-core/README.md"
        )


def _same(value: Any, neutral: Any) -> bool:
    if value is None or neutral is None:
        return value is neutral
    if isinstance(neutral, tuple):
        return tuple(value) == neutral
    return bool(value == neutral)


def vector_quantizer_config(
    dim: int,
    codebook_size: int,
    *,
    codebook_dim: int | None = None,
    decay: float = 0.8,
    freeze_codebook: bool = False,
    kmeans_init: bool = False,
    kmeans_iters: int = 10,
    use_cosine_sim: bool = False,
    threshold_ema_dead_code: float = 0,
    commitment_weight: float = 1.0,
    rotation_trick: bool | None = None,
    directional_reparam: bool = False,
    directional_reparam_variance: float = 5e-3,
    ema_update: bool | None = None,
    learnable_codebook: bool | None = None,
    **unsupported: Any,
) -> VectorQuantizerConfig:
    """The :class:`VectorQuantizerConfig` that behaves as ``vector_quantize_pytorch.VectorQuantize(...)``.

    Defaults are vector-quantize-pytorch's (EMA codebook with ``decay=0.8``, commitment loss only,
    rotation trick when ``dim > 1``, outputs read before this step's codebook update), not vq-core's.
    """
    _reject_unsupported("VectorQuantize", unsupported, _VQ_NEUTRAL)
    ema = not directional_reparam if ema_update is None else ema_update
    learnable = directional_reparam if learnable_codebook is None else learnable_codebook
    if ema and learnable:
        raise ValueError("VectorQuantize: learnable_codebook=True needs ema_update=False (the EMA owns the codebook)")
    if directional_reparam and not threshold_ema_dead_code:
        raise ValueError("VectorQuantize: directional_reparam=True needs threshold_ema_dead_code > 0 (as in vqpt)")
    rotation = (not directional_reparam and dim > 1) if rotation_trick is None else rotation_trick
    if rotation and directional_reparam:
        raise ValueError("VectorQuantize: choose one of rotation_trick and directional_reparam")
    gradient = "diveq" if directional_reparam else "rotation" if rotation else "ste"
    if directional_reparam:  # the codebook learns through the output; vqpt turns the commitment loss off
        beta, codebook_weight = 0.0, 0.0
    elif ema:
        beta, codebook_weight = commitment_weight, 1.0
    else:  # vqpt's commitment loss reaches a learnable codebook too (weight = commitment_weight), a fixed one not
        beta, codebook_weight = commitment_weight, commitment_weight if learnable else 0.0
    return VectorQuantizerConfig(
        codebook_size=codebook_size,
        dim=dim,
        codebook_dim=None if codebook_dim in (None, dim) else codebook_dim,
        distance="cosine" if use_cosine_sim else "l2",
        beta=beta,
        codebook_weight=codebook_weight,
        ema=ema,
        ema_decay=decay,
        usage_decay=decay,
        kmeans_init=kmeans_init,
        kmeans_iters=kmeans_iters,
        expire_threshold=threshold_ema_dead_code if threshold_ema_dead_code > 0 else None,
        gradient=gradient,
        diveq_variance=directional_reparam_variance,
        freeze_codebook=freeze_codebook,
        train_lookup="current",
    )


# --- layout: every face works on channel-last rows (M, D) ------------------------------------------------
def _to_rows(x: Tensor, dim: int, channel_first: bool, owner: str) -> tuple[Tensor, tuple[int, ...]]:
    """(B, D, ...) if ``channel_first`` else (..., D) -> (rows (M, D), shape of the index grid)."""
    if channel_first:
        x = x.movedim(1, -1)
    if x.shape[-1] != dim:
        layout = "(B, D, ...)" if channel_first else "(..., D)"
        raise ValueError(f"{owner}: expected {layout} input with D = {dim}, got shape {tuple(x.shape)}")
    lead = tuple(x.shape[:-1])
    return x.reshape(-1, dim), lead


def _from_rows(rows: Tensor, lead: tuple[int, ...], channel_first: bool) -> Tensor:
    out = rows.reshape(*lead, rows.shape[-1])
    return out.movedim(-1, 1) if channel_first else out


def _rows_mask(mask: Tensor | None, lens: Tensor | None, lead: tuple[int, ...]) -> Tensor | None:
    """vqpt's ``mask`` (True = keep) or ``lens`` (lengths of (B, N) sequences) -> flat bool mask or None."""
    if mask is not None and lens is not None:
        raise ValueError("pass mask or lens, not both")
    if lens is not None:
        mask = torch.arange(lead[1], device=lens.device) < lens[:, None]
    if mask is None:
        return None
    if tuple(mask.shape) != lead:
        raise ValueError(f"mask must have shape {lead} (the indices' shape), got {tuple(mask.shape)}")
    return mask.reshape(-1).bool()


def _apply_padding(out: Tensor, indices: Tensor, valid: Tensor | None, fill: Tensor) -> tuple[Tensor, Tensor]:
    """vqpt's output at padding: ``fill`` (zeros, or the input) for the vectors and -1 for the indices."""
    if valid is None:
        return out, indices
    index_mask = valid.view(-1, *([1] * (indices.ndim - 1)))
    return torch.where(valid[:, None], out, fill), indices.masked_fill(~index_mask, -1)


def _batch_usage(indices: Tensor, codebook_size: int) -> dict[str, Tensor]:
    """Fraction of codes used and perplexity of this batch's indices (-1 = padding is skipped)."""
    flat = indices.reshape(-1)
    flat = flat[flat >= 0]
    counts = torch.unique(flat, return_counts=True)[1].double()
    p = counts / counts.sum().clamp(min=1)
    return {"usage": torch.tensor(counts.numel() / codebook_size), "perplexity": (-(p * p.log()).sum()).exp().float()}


class VectorQuantize(VectorQuantizer):
    """``vector_quantize_pytorch.VectorQuantize`` on :class:`VectorQuantizer`: ``quantized, indices, loss = vq(x)``.

    ``vq.codebook`` is the (K, codebook_dim) codebook (raw rows; cosine search normalises them);
    write one with ``vq.load_codebook(codes)``.  In training the output reads the codebook before
    this step's EMA update (as vqpt); ``loss`` is the weighted commitment loss, also in eval mode
    (vqpt returns 0 there).
    """

    def __init__(
        self,
        dim: int | VectorQuantizerConfig,
        codebook_size: int | None = None,
        *,
        accept_image_fmap: bool = False,
        accept_3d_fmap: bool = False,
        channel_last: bool = True,
        return_zeros_for_masked_padding: bool = True,
        sync_codebook: bool | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(dim, VectorQuantizerConfig):
            if codebook_size is not None or kwargs:
                raise TypeError("VectorQuantize: pass a VectorQuantizerConfig or keywords, not both")
            config = dim
        else:
            if codebook_size is None:
                raise TypeError("VectorQuantize() missing required argument: 'codebook_size'")
            config = vector_quantizer_config(dim, codebook_size, **kwargs)
        if sync_codebook is False:
            raise TypeError("VectorQuantize: sync_codebook=False is not supported (vq-core always syncs under DDP)")
        super().__init__(config)
        self.accept_image_fmap, self.accept_3d_fmap, self.channel_last = accept_image_fmap, accept_3d_fmap, channel_last
        self.return_zeros_for_masked_padding = return_zeros_for_masked_padding

    @property
    def _channel_first(self) -> bool:
        return self.accept_image_fmap or self.accept_3d_fmap or not self.channel_last

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        indices: Tensor | None = None,
        mask: Tensor | None = None,
        lens: Tensor | None = None,
        freeze_codebook: bool | None = None,
        return_loss_breakdown: bool = False,
        return_aux: bool = False,
    ) -> tuple[Any, ...]:
        """(B, N, D) (or the layout set at construction) -> ``(quantized, indices, loss[, breakdown][, aux])``.

        ``mask``/``lens`` mark real positions: padding gets zeros (or the input, with
        ``return_zeros_for_masked_padding=False``) and index -1, and is left out of the codebook
        update and the loss.
        """
        if indices is not None:
            raise TypeError("VectorQuantize: the cross-entropy loss on given indices is not supported")
        rows, lead = _to_rows(x, self.dim, self._channel_first and x.ndim > 2, "VectorQuantize")
        valid = _rows_mask(mask, lens, lead)
        out, idx, aux = self.quantize(rows, mask=valid, freeze_codebook=freeze_codebook)
        fill = torch.zeros_like(out) if self.return_zeros_for_masked_padding else rows.to(out.dtype)
        out, idx = _apply_padding(out, idx, valid, fill)
        result: tuple[Any, ...] = (_from_rows(out, lead, self._channel_first and x.ndim > 2), idx.reshape(lead), aux["loss"])
        if return_loss_breakdown:
            zero = aux["loss"].new_zeros(())
            result += (LossBreakdown(aux["commit_loss"], zero, zero, zero),)
        return result + (aux,) if return_aux else result

    def get_codes_from_indices(self, indices: Tensor) -> Tensor:
        """Codebook-space codes (before ``project_out``) in this quantizer's layout."""
        codes = self.lookup(indices.reshape(-1).clamp(min=0).long()).reshape(*indices.shape, -1)
        return codes.movedim(-1, 1) if self._channel_first else codes

    def get_output_from_indices(self, indices: Tensor) -> Tensor:
        """What :meth:`forward` outputs for these indices (after ``project_out``), in this layout."""
        codes = super().indices_to_codes(indices.clamp(min=0))
        return codes.movedim(-1, 1) if self._channel_first else codes

    indices_to_codes = get_output_from_indices


class ResidualVQ(_ResidualVQ):
    """``vector_quantize_pytorch.ResidualVQ``: ``quantized, indices, losses = rvq(x)``, losses (num_quantizers,)."""

    def __init__(
        self,
        config: ResidualVQConfig | None = None,
        *,
        dim: int | None = None,
        num_quantizers: int | None = None,
        codebook_size: int | None = None,
        codebook_dim: int | None = None,
        heads: int = 1,
        accept_image_fmap: bool = False,
        return_zeros_for_masked_padding: bool = True,
        **kwargs: Any,
    ) -> None:
        if config is None:
            if dim is None or num_quantizers is None or codebook_size is None:
                raise TypeError("ResidualVQ needs dim, num_quantizers and codebook_size (or a ResidualVQConfig)")
            if heads != 1:
                raise TypeError("ResidualVQ: heads > 1 is not supported (vqpt does not support it either)")
            rvq_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _RVQ_NEUTRAL}
            _reject_unsupported("ResidualVQ", rvq_kwargs, _RVQ_NEUTRAL)
            stage_dim = codebook_dim or dim
            config = ResidualVQConfig(quantizer=vector_quantizer_config(stage_dim, codebook_size, **kwargs), depth=num_quantizers)
        elif dim is not None or kwargs:
            raise TypeError("ResidualVQ: pass a ResidualVQConfig or keywords, not both")
        super().__init__(config)
        self.dim = dim or config.quantizer.dim
        stage_dim = config.quantizer.dim
        projects = self.dim != stage_dim
        self.project_in: nn.Module = nn.Linear(self.dim, stage_dim) if projects else nn.Identity()
        self.project_out: nn.Module = nn.Linear(stage_dim, self.dim) if projects else nn.Identity()
        self.accept_image_fmap = accept_image_fmap
        self.return_zeros_for_masked_padding = return_zeros_for_masked_padding

    @property
    def num_quantizers(self) -> int:
        return self.config.depth

    @property
    def codebooks(self) -> Tensor:
        """(num_quantizers, K, D) codebooks of the stages."""
        return torch.stack([stage.codebook for stage in self.stages])

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        mask: Tensor | None = None,
        freeze_codebook: bool | None = None,
        return_all_codes: bool = False,
        return_aux: bool = False,
    ) -> tuple[Any, ...]:
        """(B, N, D) or (B, C, H, W) -> ``(quantized, indices (..., Q), losses (Q,)[, all_codes][, aux])``."""
        channel_first = self.accept_image_fmap
        rows, lead = _to_rows(x, self.dim, channel_first, "ResidualVQ")
        valid = _rows_mask(mask, None, lead)
        z = self.project_in(rows)
        out, idx, aux = self.quantize(z, mask=valid, freeze_codebook=freeze_codebook)
        out = self.project_out(out)
        fill = torch.zeros_like(out) if self.return_zeros_for_masked_padding else rows.to(out.dtype)
        out, idx = _apply_padding(out, idx, valid, fill)
        idx = idx.reshape(*lead, self.num_quantizers)
        result: tuple[Any, ...] = (_from_rows(out, lead, channel_first), idx, aux["stage_losses"])
        if return_all_codes:
            result += (self.get_codes_from_indices(idx),)
        return result + (aux,) if return_aux else result

    def get_codes_from_indices(self, indices: Tensor) -> Tensor:
        """(..., Q) -> per-stage codes (Q, ..., D) before ``project_out``; index -1 gives a zero code."""
        codes = [stage.indices_to_codes(indices[..., i].clamp(min=0)) for i, stage in enumerate(self.stages)]
        stacked = torch.stack(codes)
        return stacked.masked_fill((indices < 0).movedim(-1, 0)[..., None], 0.0)

    def get_output_from_indices(self, indices: Tensor) -> Tensor:
        """What :meth:`forward` outputs for these indices, in this quantizer's layout."""
        out = self.project_out(self.get_codes_from_indices(indices).sum(dim=0))
        return out.movedim(-1, 1) if self.accept_image_fmap else out

    indices_to_codes = get_output_from_indices


class _GroupedFace:
    """Shared by the FSQ and LFQ faces: optional projections, several codebooks per vector, vqpt layouts."""

    def _setup_face(
        self, dim: int | None, codebook_dim: int, num_codebooks: int, keep_num_codebooks_dim: bool | None,
        channel_first: bool | None, bias: bool, has_projections: bool | None = None,
    ) -> None:
        inner = codebook_dim * num_codebooks
        self.face_dim = dim or inner
        self.num_codebooks = num_codebooks
        self.keep_num_codebooks_dim = num_codebooks > 1 if keep_num_codebooks_dim is None else keep_num_codebooks_dim
        if num_codebooks > 1 and not self.keep_num_codebooks_dim:
            raise ValueError("keep_num_codebooks_dim must be True with num_codebooks > 1")
        self.channel_first = channel_first
        projects = self.face_dim != inner if has_projections is None else has_projections
        self.project_in = nn.Linear(self.face_dim, inner, bias=bias) if projects else nn.Identity()
        self.project_out = nn.Linear(inner, self.face_dim, bias=bias) if projects else nn.Identity()

    def _is_channel_first(self, ndim: int, image_ndim: int) -> bool:
        return ndim >= image_ndim if self.channel_first is None else self.channel_first

    def _split(self, x: Tensor, owner: str) -> tuple[Tensor, tuple[int, ...], bool]:
        """Input -> (rows (M * num_codebooks, codebook_dim), index grid shape, channel_first)."""
        channel_first = self._is_channel_first(x.ndim, 4)
        rows, lead = _to_rows(x, self.face_dim, channel_first, owner)
        z = self.project_in(rows)
        return z.reshape(-1, z.shape[-1] // self.num_codebooks), lead, channel_first

    def _merge(self, codes: Tensor, indices: Tensor, lead: tuple[int, ...], channel_first: bool) -> tuple[Tensor, Tensor]:
        out = self.project_out(codes.reshape(-1, codes.shape[-1] * self.num_codebooks))
        idx = indices.reshape(*lead, self.num_codebooks)
        return _from_rows(out, lead, channel_first), idx if self.keep_num_codebooks_dim else idx[..., 0]

    def _codes_from_indices(self, indices: Tensor, codes_of: Any) -> Tensor:
        """Indices (b, ..., [c]) -> output codes in the layout :meth:`forward` returns."""
        grid = indices if self.keep_num_codebooks_dim else indices[..., None]
        codes = codes_of(grid)  # (b, ..., c, d)
        out = self.project_out(codes.reshape(*grid.shape[:-1], -1))
        channel_first = self._is_channel_first(indices.ndim, 3 + int(self.keep_num_codebooks_dim))
        return out.movedim(-1, 1) if channel_first else out


class FSQ(_GroupedFace, _FSQ):
    """``vector_quantize_pytorch.FSQ``: ``codes, indices = fsq(x)`` for (B, N, D) or channel-first (B, D, H, W)."""

    def __init__(
        self,
        levels: Sequence[int] | FSQConfig,
        dim: int | None = None,
        num_codebooks: int = 1,
        keep_num_codebooks_dim: bool | None = None,
        channel_first: bool = False,
        projection_has_bias: bool = True,
        return_indices: bool = True,
        **unsupported: Any,
    ) -> None:
        _reject_unsupported("FSQ", unsupported, _FSQ_NEUTRAL)
        config = levels if isinstance(levels, FSQConfig) else FSQConfig(levels=tuple(levels))
        _FSQ.__init__(self, config)
        self._setup_face(dim, len(config.levels), num_codebooks, keep_num_codebooks_dim, channel_first or None, projection_has_bias)
        self.return_indices = return_indices

    def forward(self, z: Tensor, return_aux: bool = False) -> tuple[Any, ...]:  # type: ignore[override]
        """-> ``(codes, indices[, aux])``; codes have the input's layout, indices int64."""
        rows, lead, channel_first = self._split(z, "FSQ")
        codes, indices, aux = self.quantize(rows)
        out, idx = self._merge(codes, indices, lead, channel_first)
        result = (out, idx if self.return_indices else None)
        return result + ({**aux, **_batch_usage(idx, self.codebook_size)},) if return_aux else result

    def indices_to_codes(self, indices: Tensor) -> Tensor:  # type: ignore[override]
        """Indices -> the codes :meth:`forward` returns for them (projected out, in its layout)."""
        return self._codes_from_indices(indices, super().indices_to_codes)


class LFQ(_GroupedFace, _LFQ):
    """``vector_quantize_pytorch.LFQ``: ``quantized, indices, aux_loss = lfq(x, inv_temperature=...)``.

    Codes are numbered as vqpt does (channel 0 is the highest bit).  The entropy penalty is vq-core's
    factorised one (per-bit entropies, O(N x bits) instead of vqpt's O(N x 2**bits)), so the loss
    value differs from vqpt's while codes and indices are the same.
    """

    def __init__(
        self,
        config: LFQConfig | None = None,
        *,
        dim: int | None = None,
        codebook_size: int | None = None,
        entropy_loss_weight: float = 0.1,
        commitment_loss_weight: float = 0.0,
        diversity_gamma: float = 1.0,
        num_codebooks: int = 1,
        keep_num_codebooks_dim: bool | None = None,
        has_projections: bool | None = None,
        projection_has_bias: bool = True,
        channel_first: bool | None = None,
        **unsupported: Any,
    ) -> None:
        if "straight_through_activation" in unsupported and isinstance(unsupported["straight_through_activation"], nn.Identity):
            unsupported.pop("straight_through_activation")
        _reject_unsupported("LFQ", unsupported, _LFQ_NEUTRAL)
        if config is None:
            if dim is None and codebook_size is None:
                raise TypeError("LFQ needs dim or codebook_size")
            if codebook_size is not None and not math.log2(codebook_size).is_integer():
                raise ValueError(f"LFQ: codebook_size must be a power of 2, got {codebook_size}")
            bits = int(math.log2(codebook_size)) if codebook_size is not None else dim
            assert bits is not None
            config = LFQConfig(
                dim=bits, beta=commitment_loss_weight, entropy_weight=entropy_loss_weight,
                diversity_gamma=diversity_gamma, bit_order="msb_first",
            )
        _LFQ.__init__(self, config)
        self._setup_face(dim, config.dim, num_codebooks, keep_num_codebooks_dim, channel_first, projection_has_bias, has_projections)

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        inv_temperature: float = 100.0,
        return_loss_breakdown: bool = False,
        mask: Tensor | None = None,
        return_aux: bool = False,
    ) -> tuple[Any, ...]:
        """-> ``(quantized, indices, loss[, aux])``; eval mode returns the exact ±1 codes."""
        if return_loss_breakdown:
            raise TypeError("LFQ: return_loss_breakdown is not supported; use return_aux=True")
        rows, lead, channel_first = self._split(x, "LFQ")
        row_mask = None if mask is None else mask.reshape(-1, 1).expand(-1, self.num_codebooks).reshape(-1)
        codes, indices, aux = self.quantize(rows, mask=row_mask, inv_temperature=inv_temperature)
        if not self.training:
            codes = torch.where(rows > 0, 1.0, -1.0).to(codes.dtype)
        out, idx = self._merge(codes, indices, lead, channel_first)
        result = (out, idx, aux["loss"])
        return result + ({**aux, **_batch_usage(idx, self.codebook_size)},) if return_aux else result

    def indices_to_codes(self, indices: Tensor) -> Tensor:  # type: ignore[override]
        """Indices -> the codes :meth:`forward` returns for them (projected out, in its layout)."""
        return self._codes_from_indices(indices, super().indices_to_codes)
