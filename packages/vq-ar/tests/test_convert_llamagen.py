"""LlamaGen GPT conversion against a LlamaGen forward and sampling loop written independently here.

The state dict is built in LlamaGen's exact key layout (``autoregressive/models/gpt.py``), with random
weights and the ``freqs_cis`` buffer, and saved the way ``train_c2i.py`` saves (``{"model", "optimizer",
"steps", "args"}``).  ``_llamagen_logits`` re-implements LlamaGen's ``Transformer.forward`` from the
paper's pieces - RMSNorm, the 2D rotary table with zero rows for the class token, explicit causal
softmax attention, SwiGLU, the label embedding table whose last row is the dropped label - and
``_llamagen_generate`` follows ``generate.py``: prefill guided, decode step i (drawing token i + 1)
guided while i <= cfg_interval, temperature, Hugging Face's top-k/top-p filter, multinomial.  None of
it uses vq_ar's model, rope or sampling code.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from vq_ar import SamplingConfig, generate, load_ar
from vq_ar.cli import main
from vq_ar.convert_llamagen import convert_llamagen, infer_llamagen_config
from vq_core import CheckpointError

N_LAYER, DIM, N_HEAD, VOCAB, CLASSES, GRID = 2, 64, 4, 48, 10, 4
HEAD_DIM = DIM // N_HEAD


def _ffn_width(dim: int) -> int:
    hidden = int(2 * 4 * dim / 3)
    return hidden if hidden % 256 == 0 else hidden + 256 - hidden % 256


def _llamagen_freqs_2d(grid: int, head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """(1 + grid^2, head_dim/2, 2) table: zeros for the class token, then row/column frequencies."""
    half = head_dim // 2
    freqs = 1.0 / (base ** (torch.arange(0, half, 2)[: half // 2].float() / half))
    angles = torch.outer(torch.arange(grid).float(), freqs)
    per_cell = torch.cat([angles[:, None, :].expand(-1, grid, -1), angles[None, :, :].expand(grid, -1, -1)], dim=-1)
    table = torch.stack([per_cell.cos(), per_cell.sin()], dim=-1).flatten(0, 1)
    return torch.cat([torch.zeros(1, head_dim // 2, 2), table])


def _llamagen_state(seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, std: float = 0.15) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    ffn = _ffn_width(DIM)
    state = {
        "tok_embeddings.weight": rnd(VOCAB, DIM, std=1.0),
        "cls_embedding.embedding_table.weight": rnd(CLASSES + 1, DIM, std=1.0),
        "norm.weight": 1 + rnd(DIM, std=0.1),
        "output.weight": rnd(VOCAB, DIM, std=0.3),
        "freqs_cis": _llamagen_freqs_2d(GRID, HEAD_DIM),
    }
    for i in range(N_LAYER):
        p = f"layers.{i}."
        state |= {
            p + "attention.wqkv.weight": rnd(3 * DIM, DIM),
            p + "attention.wo.weight": rnd(DIM, DIM),
            p + "feed_forward.w1.weight": rnd(ffn, DIM),
            p + "feed_forward.w3.weight": rnd(ffn, DIM),
            p + "feed_forward.w2.weight": rnd(DIM, ffn),
            p + "attention_norm.weight": 1 + rnd(DIM, std=0.1),
            p + "ffn_norm.weight": 1 + rnd(DIM, std=0.1),
        }
    return state


def _rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * weight


def _rotate(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """x (B, L, H, D) by table (L, D/2, 2): pairs (2j, 2j+1) rotated by (cos, sin)."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    cos, sin = table[None, :, None, :, 0], table[None, :, None, :, 1]
    out = torch.stack([pairs[..., 0] * cos - pairs[..., 1] * sin, pairs[..., 1] * cos + pairs[..., 0] * sin], dim=-1)
    return out.flatten(3)


def _llamagen_logits(state: dict[str, torch.Tensor], labels: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Logits (B, 1 + T, vocab) of the class token followed by ``tokens`` (B, T), dropout off."""
    h = torch.cat([state["cls_embedding.embedding_table.weight"][labels][:, None], state["tok_embeddings.weight"][tokens]], 1)
    batch, length, _ = h.shape
    table = state["freqs_cis"][:length]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    for i in range(N_LAYER):
        p = f"layers.{i}."
        x = _rms(h, state[p + "attention_norm.weight"])
        q, k, v = (x @ state[p + "attention.wqkv.weight"].T).split(DIM, dim=-1)
        q, k, v = (t.reshape(batch, length, N_HEAD, HEAD_DIM) for t in (q, k, v))
        q, k = _rotate(q, table), _rotate(k, table)
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(HEAD_DIM)
        weights = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        attended = torch.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, length, DIM)
        h = h + attended @ state[p + "attention.wo.weight"].T
        x = _rms(h, state[p + "ffn_norm.weight"])
        h = h + (F.silu(x @ state[p + "feed_forward.w1.weight"].T) * (x @ state[p + "feed_forward.w3.weight"].T)) @ state[p + "feed_forward.w2.weight"].T
    return _rms(h, state["norm.weight"]) @ state["output.weight"].T


def _hf_filter(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Hugging Face's top_k_top_p_filtering, as LlamaGen's generate.py carries it."""
    logits = logits.clone()
    if top_k > 0:
        k = min(max(top_k, 1), logits.size(-1))
        logits[logits < torch.topk(logits, k)[0][..., -1, None]] = float("-inf")
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(logits, descending=True)
        cumulative = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
        remove = cumulative > top_p
        remove[..., 1:] = remove[..., :-1].clone()
        remove[..., 0] = False
        logits[remove.scatter(1, sorted_indices, remove)] = float("-inf")
    return logits


def _llamagen_generate(state, labels, *, cfg_scale, cfg_interval, temperature, top_k, top_p, generator):  # noqa: ANN001, ANN202
    """generate.py without its KV cache: every step recomputes the prefix with ``_llamagen_logits``."""
    guided = cfg_scale > 1.0
    rows = torch.cat([labels, torch.full_like(labels, CLASSES)]) if guided else labels
    tokens = torch.zeros(len(labels), 0, dtype=torch.long)
    for t in range(GRID * GRID):
        logits = _llamagen_logits(state, rows, torch.cat([tokens, tokens]) if guided else tokens)[:, -1]
        if guided:
            cond, uncond = logits.split(len(labels))
            use_cfg = t == 0 or not (cfg_interval > -1 and t - 1 > cfg_interval)  # decode step i = t - 1
            logits = uncond + (cond - uncond) * cfg_scale if use_cfg else cond
        probs = F.softmax(_hf_filter(logits / max(temperature, 1e-5), top_k, top_p), dim=-1)
        tokens = torch.cat([tokens, torch.multinomial(probs, 1, generator=generator)], 1)
    return tokens


@pytest.fixture
def release(tmp_path: Path) -> tuple[Path, dict[str, torch.Tensor]]:
    """A file saved as train_c2i.py saves: model weights, optimizer state, step count and the argparse args."""
    state = _llamagen_state()
    path = tmp_path / "c2i_T_64.pt"
    args = argparse.Namespace(gpt_model="GPT-T", image_size=64, cfg_scale=4.0, ema=False)
    torch.save({"model": state, "optimizer": {"state": {}, "param_groups": []}, "steps": 1234, "args": args}, path)
    return path, state


@pytest.fixture
def converted(release, tmp_path: Path):  # noqa: ANN001, ANN201
    path, state = release
    out, config = convert_llamagen(path, tmp_path / "out" / "model.safetensors", n_head=N_HEAD)
    loaded = load_ar(out)
    assert loaded.config == config
    return loaded, state


def test_converted_logits_equal_llamagens(converted) -> None:  # noqa: ANN001
    loaded, state = converted
    assert loaded.config.rope_class == "zero" and loaded.config.grid == (GRID, GRID) and loaded.step == 1234
    labels = torch.tensor([0, 3, 9, CLASSES])  # CLASSES: LlamaGen's dropped-label row = our null class
    tokens = torch.randint(0, VOCAB, (4, GRID * GRID - 1), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = loaded.model(labels, tokens)
        reference = _llamagen_logits(state, labels, tokens)
        identity = loaded.model.__class__(loaded.config.model_copy(update={"rope_class": "identity"}))
        identity.load_state_dict(loaded.model.state_dict())
        other = identity.eval()(labels, tokens)
    assert reference.abs().max() > 1.0  # logits large enough for the comparison to mean something
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-5)
    assert (other - reference).abs().max() > 1e-2  # the zero class row is what makes them equal


SAMPLING = [
    {"cfg_scale": 4.0, "cfg_interval": -1, "temperature": 1.0, "top_k": 20, "top_p": 1.0},
    {"cfg_scale": 1.75, "cfg_interval": 3, "temperature": 0.9, "top_k": 0, "top_p": 0.9},
    {"cfg_scale": 2.5, "cfg_interval": 0, "temperature": 1.2, "top_k": 30, "top_p": 0.8},
    {"cfg_scale": 1.0, "cfg_interval": -1, "temperature": 1.0, "top_k": 10, "top_p": 0.95},
]


@pytest.mark.parametrize("settings", SAMPLING, ids=lambda s: "-".join(f"{k}{v}" for k, v in s.items()))
def test_seeded_sampling_is_token_identical_to_llamagens_loop(converted, settings: dict) -> None:  # noqa: ANN001
    loaded, state = converted
    labels = torch.tensor([1, 4, 7])
    with torch.no_grad():
        reference = _llamagen_generate(state, labels, generator=torch.Generator().manual_seed(5), **settings)
    ours = generate(loaded.model, labels, sampling=SamplingConfig(**settings), generator=torch.Generator().manual_seed(5))
    assert torch.equal(ours, reference)


def test_cfg_interval_changes_samples(converted) -> None:  # noqa: ANN001
    """The interval test above would be vacuous if guiding one token more or less changed nothing."""
    loaded, state = converted
    labels = torch.tensor([1, 4, 7])
    kw = {"cfg_scale": 4.0, "temperature": 1.0, "top_k": 0, "top_p": 1.0}
    with torch.no_grad():
        runs = [_llamagen_generate(state, labels, cfg_interval=k, generator=torch.Generator().manual_seed(5), **kw) for k in (0, 1)]
    assert not torch.equal(runs[0], runs[1])


def test_cli_converts_and_names_problems_in_one_line(release, tmp_path: Path) -> None:  # noqa: ANN001
    path, state = release
    runner = CliRunner()
    result = runner.invoke(main, ["convert", "llamagen", str(path), "--out", str(tmp_path / "cli"), "--n-head", str(N_HEAD)])
    assert result.exit_code == 0, result.output
    loaded = load_ar(tmp_path / "cli" / "model.safetensors")
    labels, tokens = torch.tensor([2]), torch.randint(0, VOCAB, (1, 5))
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(labels, tokens), _llamagen_logits(state, labels, tokens), rtol=0, atol=1e-5)
    assert loaded.state["converted_from"]["file"] == path.name

    result = runner.invoke(main, ["convert", "llamagen", str(path), "--out", str(tmp_path / "no_heads")])
    assert result.exit_code != 0 and "pass --n-head" in result.output and "Traceback" not in result.output

    broken = {k: v for k, v in state.items() if k != "layers.1.ffn_norm.weight"} | {"layers.1.extra.weight": torch.zeros(2)}
    torch.save({"model": broken}, tmp_path / "c2i_bad_64.pt")
    result = runner.invoke(main, ["convert", "llamagen", str(tmp_path / "c2i_bad_64.pt"), "--out", str(tmp_path / "bad"), "--n-head", "4"])
    assert result.exit_code != 0 and "layers.1.extra.weight" in result.output and "layers.1.ffn_norm.weight" in result.output


def test_a_pickle_naming_other_code_is_refused_unless_trusted(tmp_path: Path) -> None:
    path = tmp_path / "c2i_T_64.pt"
    torch.save({"model": _llamagen_state(), "args": Path("x")}, path)  # pathlib is not on the allowlist
    with pytest.raises(CheckpointError, match="trust-pickle"):
        convert_llamagen(path, tmp_path / "a.safetensors", n_head=N_HEAD)
    convert_llamagen(path, tmp_path / "b.safetensors", n_head=N_HEAD, trust_pickle=True)


def _meta_state(n_layer: int, dim: int, n_head: int, grid: int | None) -> dict[str, torch.Tensor]:
    with torch.device("meta"):
        state = {"tok_embeddings.weight": torch.empty(16384, dim), "output.weight": torch.empty(16384, dim),
                 "cls_embedding.embedding_table.weight": torch.empty(1001, dim), "norm.weight": torch.empty(dim)}
        for i in range(n_layer):
            state[f"layers.{i}.attention.wqkv.weight"] = torch.empty(3 * dim, dim)
            state[f"layers.{i}.feed_forward.w1.weight"] = torch.empty(_ffn_width(dim), dim)
        if grid is not None:
            state["freqs_cis"] = torch.empty(1 + grid * grid, dim // n_head // 2, 2)
    return state


@pytest.mark.parametrize(("name", "n_layer", "dim", "n_head", "grid"), [
    ("c2i_B_256.pt", 12, 768, 12, 16), ("c2i_L_384.pt", 24, 1024, 16, 24),
    ("c2i_XL_384.pt", 36, 1280, 20, 24), ("c2i_XXL_384.pt", 48, 1536, 24, 24),
])
def test_sizes_and_grids_are_read_off_gpt_b_to_xxl_shapes(name: str, n_layer: int, dim: int, n_head: int, grid: int) -> None:
    """gpt.py's GPT_B..GPT_XXL (layers, heads, width); the grid from the release name or freqs_cis rows."""
    by_name = infer_llamagen_config(_meta_state(n_layer, dim, n_head, None), path=name)
    assert (by_name.n_layer, by_name.dim, by_name.n_head, by_name.grid) == (n_layer, dim, n_head, (grid, grid))
    assert (by_name.num_classes, by_name.vocab_size, by_name.ffn_hidden) == (1000, 16384, _ffn_width(dim))
    assert infer_llamagen_config(_meta_state(n_layer, dim, n_head, 32), path="weights.pt").grid == (32, 32)
    with pytest.raises(CheckpointError, match="--grid"):
        infer_llamagen_config(_meta_state(n_layer, dim, n_head, None), path="weights.pt")


def test_with_its_tokenizer_the_converted_gpt_samples_images(release, tmp_path: Path) -> None:  # noqa: ANN001
    """--tokenizer records the VQ's token space, so `vq-ar sample` finds and verifies the decoder."""
    from vq_tokenizers import VQGAN, VQGANConfig, save_tokenizer

    def vq(codebook: int, name: str) -> Path:
        config = VQGANConfig(image_size=16, ch=32, ch_mult=(1, 1, 1), num_res_blocks=1, attn_resolutions=(),
                             z_channels=16, quantizer={"codebook_size": codebook, "dim": 8})
        return save_tokenizer(VQGAN(config), tmp_path / name)

    path, _ = release
    runner = CliRunner()
    result = runner.invoke(main, ["convert", "llamagen", str(path), "--out", str(tmp_path / "gpt"), "--n-head", "4",
                                  "--tokenizer", str(vq(VOCAB, "vq.safetensors"))])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["sample", "--ckpt", str(tmp_path / "gpt" / "model.safetensors"), "--class", "1", "--n", "2",
                                  "--cfg", "4.0", "--top-k", "20", "--out", str(tmp_path / "samples"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "samples").rglob("*.png"))) >= 2

    result = runner.invoke(main, ["convert", "llamagen", str(path), "--out", str(tmp_path / "gpt2"), "--n-head", "4",
                                  "--tokenizer", str(vq(32, "other.safetensors"))])
    assert result.exit_code != 0 and "codebook 32" in result.output and "Traceback" not in result.output
