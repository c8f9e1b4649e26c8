"""Sampling throughput of the vq-ar model: static KV cache vs. recomputing the prefix vs. transformers.

Three ways to sample ``--tokens`` image tokens for ``--batch`` class labels, same dims, random weights:

* ``vq-ar cached``    — :func:`vq_ar.generate` with the static pre-allocated KV cache;
* ``vq-ar no cache``  — the same sampler recomputing the whole prefix for every token;
* ``transformers``    — ``LlamaForCausalLM.generate(use_cache=True)`` with the same layers/width/heads/FFN
  (class labels as extra vocabulary ids for the one-token prompt; 1D RoPE; its dynamic cache);
* ``LlamaGen``        — with ``--llamagen PATH`` (a LlamaGen checkout, not part of this project): its
  ``autoregressive.models.generate.generate`` on its ``gpt.Transformer`` of the same shape (same guidance
  scale, temperature 1, no top-k/top-p, its static KV cache, eager);
* ``GEMM limit``      — the bare matmuls of one decode step at the same shapes (``F.linear`` of a
  (rows, in) activation with every projection and the head of the model, rows = batch, x2 with --cfg),
  timed alone: the tokens/s a sampler would reach if nothing but its weight GEMMs cost time.  ``% limit``
  is each sampler's rate as a share of it; GFLOP/s counts those matmul FLOPs per token for every method.

Default: a small model (8 layers, 256 wide) on 2 CPU cores in about two minutes.  Bigger runs:
``--layers 24 --dim 1024 --heads 16 --vocab 16384 --batch 32 --device cuda`` (LlamaGen GPT-L).

    .venv/bin/python benchmarks/ar_sampling.py [--threads 2] [--skip-hf] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from timing import timed as _timed
from vq_ar import ARConfig, ARTransformer, SamplingConfig, generate


def _random_weights(model: torch.nn.Module, seed: int) -> None:
    """LlamaGen zero-inits the head; random weights give a realistic, non-degenerate distribution."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.normal_(0.0, 0.02)


def _hf_model(config: ARConfig, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    # Python puts this script's folder first on sys.path, where benchmarks/tokenizers.py would shadow
    # the `tokenizers` package transformers imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(
        vocab_size=config.vocab_size + config.num_classes + 1,
        hidden_size=config.dim,
        intermediate_size=config.ffn_hidden,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_head,
        max_position_embeddings=config.seq_len + 1,
        rms_norm_eps=config.norm_eps,
        tie_word_embeddings=False,
        attention_bias=False,
        mlp_bias=False,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=0,
    )
    model = LlamaForCausalLM._from_config(hf_config, attn_implementation="sdpa", dtype=dtype)
    _random_weights(model, 0)
    return model.to(device).eval()


def decode_gemm_seconds(model: torch.nn.Module, rows: int, device: torch.device, repeats: int) -> tuple[float, int]:
    """Best time of one decode step's weight matmuls alone (every ``nn.Linear`` of the model once, at
    ``rows`` rows, in the model's dtype), and their FLOPs."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs = [torch.randn(rows, m.in_features, device=device, dtype=m.weight.dtype) for m in linears]

    def step() -> None:
        for m, x in zip(linears, inputs):
            torch.nn.functional.linear(x, m.weight)

    best, _ = _timed(step, device, max(repeats, 1) * 20)
    return best, sum(2 * rows * m.weight.numel() for m in linears)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--grid", type=int, default=16, help="tokens per image = grid**2")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--cfg", type=float, default=1.0, help="guidance scale (>1 doubles the rows for vq-ar)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--skip-nocache", action="store_true", help="skip the slow recompute-everything path")
    parser.add_argument("--skip-hf", action="store_true")
    parser.add_argument("--llamagen", default=None, help="a LlamaGen checkout: also time its generate()")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    multiple_of = 256 if args.dim >= 768 else 32
    config = ARConfig(
        vocab_size=args.vocab,
        num_classes=args.classes,
        grid=(args.grid, args.grid),
        dim=args.dim,
        n_layer=args.layers,
        n_head=args.heads,
        multiple_of=multiple_of,
    )
    model = ARTransformer(config)
    _random_weights(model, 0)
    model = model.to(device=device, dtype=dtype).eval()
    labels = torch.arange(args.batch) % args.classes
    sampling = SamplingConfig(cfg_scale=args.cfg)
    n_tokens = args.batch * config.seq_len

    def ours(use_cache: bool) -> Callable[[], torch.Tensor]:
        return lambda: generate(
            model, labels, sampling=sampling, use_cache=use_cache,
            generator=torch.Generator(device=device).manual_seed(0),
        )

    results: dict[str, float] = {}
    cached_s, cached_tokens = _timed(ours(True), device, args.repeats)
    results["vq-ar cached"] = n_tokens / cached_s
    if not args.skip_nocache:
        # one run, no warm-up: the cached runs warmed the same kernels, and this path is quadratic
        nocache_s, nocache_tokens = _timed(ours(False), device, 1, warmup=False)
        results["vq-ar no cache"] = n_tokens / nocache_s
        if dtype == torch.float32 and not torch.equal(cached_tokens, nocache_tokens):
            print("warning: cached and uncached tokens differ (float rounding at a sampling boundary)")
    if not args.skip_hf:
        hf = _hf_model(config, device, dtype)
        prompt = (config.vocab_size + labels).to(device)[:, None]
        if args.cfg != 1.0:
            prompt = torch.cat([prompt, torch.full_like(prompt, config.vocab_size + config.num_classes)])

        def hf_generate() -> torch.Tensor:
            torch.manual_seed(0)
            with torch.no_grad():
                return hf.generate(
                    input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=config.seq_len,
                    min_new_tokens=config.seq_len, do_sample=True, top_k=0, top_p=1.0, use_cache=True,
                )

        hf_s, hf_out = _timed(hf_generate, device, args.repeats)
        assert hf_out.shape[1] == config.seq_len + 1
        # with --cfg the baseline runs the same 2B rows (without mixing them): count the B images' tokens
        results["transformers generate"] = n_tokens / hf_s

    if args.llamagen:
        sys.path.insert(0, args.llamagen)
        from autoregressive.models.generate import generate as llamagen_generate
        from autoregressive.models.gpt import ModelArgs, Transformer

        peer = Transformer(ModelArgs(
            dim=config.dim, n_layer=config.n_layer, n_head=config.n_head, multiple_of=multiple_of, vocab_size=config.vocab_size,
            num_classes=config.num_classes, block_size=config.seq_len, class_dropout_prob=0.1,
        ))
        _random_weights(peer, 0)
        peer = peer.to(device=device, dtype=dtype).eval()
        cond = labels.to(device)

        def peer_generate() -> torch.Tensor:
            torch.manual_seed(0)
            with torch.no_grad():
                return llamagen_generate(peer, cond, config.seq_len, cfg_scale=args.cfg, temperature=1.0, top_k=0, top_p=1.0, sample_logits=True)

        peer_s, peer_out = _timed(peer_generate, device, args.repeats)
        assert peer_out.shape == (args.batch, config.seq_len)
        results["LlamaGen generate"] = n_tokens / peer_s
    print(
        f"model: {config.n_layer} layers, dim {config.dim}, {config.n_head} heads, ffn {config.ffn_hidden}, "
        f"vocab {config.vocab_size}; batch {args.batch}, {config.seq_len} tokens, cfg {args.cfg}; "
        f"{device} {args.dtype}, {torch.get_num_threads()} threads, torch {torch.__version__}, {platform.machine()}"
    )
    rows = args.batch * (2 if args.cfg != 1.0 else 1)
    gemm_s, step_flops = decode_gemm_seconds(model, rows, device, args.repeats)
    results["GEMM limit"] = args.batch / gemm_s
    flops_per_token = step_flops / args.batch
    print(f"load {os.getloadavg()[0]:.2f}; GEMM limit: {rows} rows x every projection + head = {step_flops / 1e9:.3f} GFLOP "
          f"per decode step in {1e3 * gemm_s:.2f} ms ({step_flops / gemm_s / 1e9:.1f} GFLOP/s)")
    print(f"{'method':<24} {'tokens/s':>10} {'vs cached':>10} {'GFLOP/s':>8} {'% limit':>8}")
    for name, rate in results.items():
        print(f"{name:<24} {rate:>10.1f} {rate / results['vq-ar cached']:>9.3f}x {rate * flops_per_token / 1e9:>8.1f} "
              f"{100 * rate / results['GEMM limit']:>7.0f}%")
    if "vq-ar no cache" in results:
        print(f"KV cache speed-up over no cache: {results['vq-ar cached'] / results['vq-ar no cache']:.1f}x")
    if "LlamaGen generate" in results:
        print(f"vq-ar cached vs LlamaGen generate: {results['vq-ar cached'] / results['LlamaGen generate']:.2f}x")
    if "transformers generate" in results:
        print(f"vq-ar cached vs transformers generate: {results['vq-ar cached'] / results['transformers generate']:.2f}x")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"args": vars(args), "tokens_per_s": results}, handle, indent=2)


if __name__ == "__main__":
    main()
