"""GPT-2 (transformers ``GPT2LMHeadModel``) as a class-conditional AR model: the seed's ``c2i_gpt2_medium``.

The seed (magic-research/vector_quantization ``vq/algorithms/ar/transformers/gpt.py``, ``hf.py`` and
``vq/tasks/sequence_modeling/models/c2i.py``) loads ``GPT2LMHeadModel.from_pretrained('gpt2-medium')``
and resizes its (tied) token embedding to one shared vocabulary: ids ``0 .. C-1`` the classes, ``C``
the null class of classifier-free guidance, ``C + 1 + t`` image code ``t``.  A sequence is
``[class id] + image ids`` at GPT-2's learned positions ``0 .. N``, so the pretrained text-token rows
``0 .. C + K`` become the initial class and code embeddings (``resize_token_embeddings`` truncates).

:class:`GPT2AR` has :class:`~vq_ar.model.ARTransformer`'s interface (``forward(labels, tokens, cache=,
start=, last_only=)``, ``new_cache``, ``seq_len``, ``null_class``, ``tok_embeddings``), so training,
cached CFG sampling, validation and checkpoints work unchanged.  Its logits are the code rows of the
head: sampling draws codes only (the seed restricts sampling to the image codebook too); the training
softmax is over codes, where the seed's HF loss also normalises over the class ids (see ``presets.py``).
Dropouts map to GPT-2's: ``token_dropout`` -> ``embd_pdrop``, ``attn_dropout`` -> ``attn_pdrop``,
``resid_dropout`` -> ``resid_pdrop`` (GPT-2 applies it after attention and after the MLP).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from vq_ar.config import ARConfig


def _cache_argument() -> str:
    """transformers renamed GPT2Model.forward's ``past_key_values`` to ``cache`` (5.x deprecates the old name)."""
    import inspect

    from transformers import GPT2Model

    return "cache" if "cache" in inspect.signature(GPT2Model.forward).parameters else "past_key_values"


_CACHE_ARG = _cache_argument()


def gpt2_config(config: ARConfig):  # noqa: ANN201 - transformers.GPT2Config, imported lazily
    """The transformers ``GPT2Config`` of an ``ARConfig`` with ``backbone='gpt2'``."""
    from transformers import GPT2Config

    return GPT2Config(
        vocab_size=config.num_classes + 1 + config.vocab_size,
        n_positions=config.max_positions,
        n_embd=config.dim,
        n_layer=config.n_layer,
        n_head=config.n_head,
        activation_function="gelu_new",
        resid_pdrop=config.resid_dropout,
        embd_pdrop=config.token_dropout,
        attn_pdrop=config.attn_dropout,
        layer_norm_epsilon=config.norm_eps,
        initializer_range=config.initializer_range,
        tie_word_embeddings=config.tie_embeddings,
    )


class GPT2AR(nn.Module):
    """``GPT2LMHeadModel`` over ``[class] + image tokens`` in one shared vocabulary (see the module docstring)."""

    def __init__(self, config: ARConfig) -> None:
        super().__init__()
        from transformers import GPT2LMHeadModel

        if config.backbone != "gpt2":
            raise ValueError(f"GPT2AR needs backbone 'gpt2', got {config.backbone!r}")
        self.config = config
        self.code_offset = config.num_classes + 1  # classes, the null class, then the codes
        self.gpt2 = GPT2LMHeadModel(gpt2_config(config))

    @property
    def tok_embeddings(self) -> nn.Embedding:
        """The shared token embedding (classes, null class, codes)."""
        return self.gpt2.transformer.wte

    @property
    def null_class(self) -> int:
        return self.config.num_classes

    @property
    def seq_len(self) -> int:
        return self.config.seq_len

    def new_cache(self, batch: int, *, dtype: torch.dtype | None = None):  # noqa: ANN201 - transformers DynamicCache
        """An empty transformers cache; GPT-2 fills it in place as positions are fed."""
        from transformers import DynamicCache

        return DynamicCache()

    def load_pretrained(self, path: str | Path) -> None:
        """Initialise from a local transformers GPT-2 directory, as the seed: every weight, the token
        embedding truncated to the shared vocabulary (``resize_token_embeddings``)."""
        from transformers import GPT2LMHeadModel

        path = Path(path)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"pretrained GPT-2 {path}: no config.json; give a local transformers GPT-2 directory (save_pretrained "
                f"layout, e.g. gpt2-medium) - nothing is downloaded"
            )
        source = GPT2LMHeadModel.from_pretrained(path, local_files_only=True)
        c, mine = source.config, self.gpt2.config
        theirs = (c.n_embd, c.n_layer, c.n_head, c.n_positions)
        ours = (mine.n_embd, mine.n_layer, mine.n_head, mine.n_positions)
        if theirs != ours:
            raise ValueError(
                f"pretrained GPT-2 {path} is (n_embd, n_layer, n_head, n_positions) {theirs} but the AR config needs "
                f"{ours}; use the matching size (gpt2-medium: 1024, 24, 16, 1024)"
            )
        source.resize_token_embeddings(mine.vocab_size)
        self.gpt2.load_state_dict(source.state_dict())

    def forward(
        self,
        labels: torch.Tensor | None,
        tokens: torch.Tensor | None = None,
        *,
        cache=None,  # noqa: ANN001 - transformers DynamicCache
        start: int = 0,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Code logits (B, L, vocab_size), float32, for sequence positions ``start ..``; as ``ARTransformer.forward``."""
        parts = []
        if labels is not None:
            if start != 0:
                raise ValueError("the class token sits at sequence position 0; pass labels only with start=0")
            parts.append(labels.long()[:, None])
        elif cache is None or start == 0:
            raise ValueError("a slice without the class token continues a cached prefix: pass cache and start>=1")
        if tokens is not None and tokens.shape[1] > 0:
            parts.append(tokens.long() + self.code_offset)
        if not parts:
            raise ValueError("nothing to run: give labels and/or tokens")
        ids = torch.cat(parts, dim=1)
        end = start + ids.shape[1]
        if end > self.seq_len:
            raise ValueError(f"sequence positions up to {end} exceed the model's {self.seq_len} (class + tokens[:-1])")
        positions = torch.arange(start, end, device=ids.device).expand(ids.shape[0], -1)
        out = self.gpt2.transformer(input_ids=ids, position_ids=positions, use_cache=cache is not None, **{_CACHE_ARG: cache})
        hidden = out.last_hidden_state[:, -1:] if last_only else out.last_hidden_state
        logits = self.gpt2.lm_head(hidden)[..., self.code_offset :]
        return logits if logits.dtype == torch.float64 else logits.float()
