"""Every AR preset against the values of the upstream file it reproduces (typed here from those files).

LlamaGen: autoregressive/models/gpt.py (GPT_B..GPT_XXL, ModelArgs), autoregressive/train/train_c2i.py
(argparse defaults), autoregressive/sample/sample_c2i.py (argparse defaults).  The seed:
configs/ar/{c2i_llama_medium_imagenet_ddp, c2i_llama_medium_cfg_imagenet_ddp, cfg, interface, runner,
x2i}.py, configs/ar/transformers/llama.py and vq/tasks/sequence_modeling/models/samplers.py.
"""

from __future__ import annotations

import pytest
import torch

from vq_ar import PRESETS, ARTransformer, ar_config, count_parameters, get_preset, lr_factor
from vq_ar.training import param_groups

LLAMAGEN = {  # name: (layers, dim, heads, ffn, published params, released grid)
    "llamagen_gpt_b": (12, 768, 12, 2048, 111e6, 16),
    "llamagen_gpt_l": (24, 1024, 16, 2816, 343e6, 16),
    "llamagen_gpt_xl": (36, 1280, 20, 3584, 775e6, 24),
    "llamagen_gpt_xxl": (48, 1536, 24, 4096, 1.4e9, 24),
}


@pytest.mark.parametrize("name", list(LLAMAGEN))
def test_llamagen_presets(name: str) -> None:
    layers, dim, heads, ffn, params, grid = LLAMAGEN[name]
    preset = get_preset(name)
    model = preset.model_config()
    assert (model.n_layer, model.dim, model.n_head, model.ffn_hidden) == (layers, dim, heads, ffn)
    assert (model.vocab_size, model.num_classes, model.grid) == (16384, 1000, (grid, grid))
    assert abs(count_parameters(preset.model_config(grid=(16, 16))) - params) / params < 0.01
    assert (model.rope, model.rope_class, model.rope_base, model.norm_eps) == ("2d", "zero", 10000.0, 1e-5)
    assert (model.token_dropout, model.resid_dropout, model.ffn_dropout, model.attn_dropout) == (0.1, 0.1, 0.1, 0.0)
    assert model.class_dropout == 0.1 and not model.tie_embeddings and model.initializer_range == 0.02
    train = preset.train_config()
    assert (train.lr, train.betas, train.weight_decay, train.weight_decay_on) == (1e-4, (0.9, 0.95), 0.05, "matrices")
    assert (train.grad_clip, train.batch_size, train.steps) == (1.0, 256, 300 * 5004)  # 300 epochs of int(1281167 / 256)
    assert [lr_factor(s, train) for s in (0, 1000, train.steps - 1)] == [1.0, 1.0, 1.0]  # no scheduler: constant lr
    sampling = preset.sampling_config()
    assert (sampling.cfg_scale, sampling.cfg_interval, sampling.top_k, sampling.top_p, sampling.temperature) == (4.0, -1, 2000, 1.0, 1.0)
    assert sampling.cfg_schedule == "constant"


@pytest.mark.parametrize(("name", "label_dropout", "cfg"), [("c2i_llama_medium", 0.0, 1.0), ("c2i_llama_medium_cfg", 0.1, 1.75)])
def test_seed_recipe_presets(name: str, label_dropout: float, cfg: float) -> None:
    preset = get_preset(name)
    model = preset.model_config()
    assert (model.n_layer, model.dim, model.n_head, model.ffn_hidden, model.norm_eps) == (24, 1024, 16, 2816, 1e-5)
    assert (model.rope, model.rope_class, model.rope_base) == ("1d", "sequence", 10000.0)
    assert (model.token_dropout, model.resid_dropout, model.ffn_dropout, model.attn_dropout) == (0.0, 0.0, 0.0, 0.0)
    assert model.class_dropout == label_dropout and not model.tie_embeddings
    assert (model.vocab_size, model.grid) == (8192, (16, 16))  # VQ-KD 8192 at 256 px
    train = preset.train_config()
    assert (train.lr, train.betas, train.weight_decay, train.weight_decay_on, train.eps) == (1e-4, (0.9, 0.98), 0.2, "all", 1e-6)
    assert (train.steps, train.batch_size, train.grad_clip, train.warmup_steps) == (260_000, 96, 0.0, 0)
    assert lr_factor(0, train) == 1.0 and lr_factor(train.steps, train) == 0.0  # CosineAnnealingLR(T_max=260k), eta_min 0
    assert abs(lr_factor(train.steps // 2, train) - 0.5) < 1e-12
    sampling = preset.sampling_config()
    assert (sampling.top_k, sampling.top_p, sampling.temperature, sampling.cfg_scale, sampling.cfg_interval) == (600, 0.92, 1.0, cfg, -1)
    assert any("configs/ar/runner.py" in s for s in preset.sources)


def test_every_preset_is_tested_and_names_its_upstream_files() -> None:
    assert set(PRESETS) == set(LLAMAGEN) | {"c2i_llama_medium", "c2i_llama_medium_cfg", "c2i_gpt2_medium", "c2i_gpt2_medium_cfg"}
    for preset in PRESETS.values():
        assert preset.sources and all(":" in s for s in preset.sources)
        resolved = preset.resolved(vocab_size=64, num_classes=3, grid=(4, 4))
        assert resolved["model"]["vocab_size"] == 64 and resolved["model"]["grid"] == [4, 4]


def test_weight_decay_on_all_decays_the_norm_gains_too() -> None:
    """The seed's AdamW gets every transformer parameter with weight decay 0.2; LlamaGen's split spares 1-D ones."""
    model = ARTransformer(ar_config("nano", vocab_size=16, num_classes=2, grid=(2, 2)))
    norms = {id(p) for n, p in model.named_parameters() if "norm" in n}
    split, everything = param_groups(model, 0.2), param_groups(model, 0.2, decay_all=True)
    assert norms.isdisjoint(id(p) for p in split[0]["params"]) and norms <= {id(p) for p in split[1]["params"]}
    assert len(everything[0]["params"]) == len(list(model.parameters())) and not everything[1]["params"]
    assert all(isinstance(p, torch.nn.Parameter) for p in everything[0]["params"])


def test_train_with_a_preset_takes_its_settings_under_explicit_flags(tmp_path, write_token_shards) -> None:  # noqa: ANN001
    import json

    import numpy as np
    from click.testing import CliRunner

    from vq_ar.cli import main

    tokens = np.random.default_rng(0).integers(0, 32, size=(8, 4, 4))
    data = write_token_shards(tmp_path / "tokens", tokens, np.arange(8) % 2, codebook_size=32, num_classes=2)
    args = ["train", "--data", str(data), "--out", str(tmp_path / "run"), "--preset", "c2i_llama_medium_cfg",
            "--size", "nano", "--steps", "2", "--batch-size", "4", "--lr", "1e-3", "--log-every", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "run" / "train.json").read_text())
    train, model = summary["train"], summary["model"]
    assert (train["steps"], train["batch_size"], train["lr"]) == (2, 4, 1e-3)  # given on the command line
    assert (train["eps"], train["betas"], train["weight_decay"], train["weight_decay_on"]) == (1e-6, [0.9, 0.98], 0.2, "all")
    assert (train["min_lr_ratio"], train["grad_clip"], train["ckpt_every"]) == (0.0, 0.0, 10_000)
    assert (model["n_layer"], model["dim"]) == (2, 64)  # --size nano over the preset's L
    assert (model["rope"], model["rope_class"], model["class_dropout"], model["resid_dropout"]) == ("1d", "sequence", 0.1, 0.0)
